"""JSON-only payloads: the error names the argument's path and its type."""

import datetime as dt
import decimal
import math

import pytest

from django_bgjobs import InvalidJob, InvalidPayload, PayloadTooLarge
from django_bgjobs.payload import check_arguments, check_result
from tests.models import Execution

LIMIT = 256 * 1024


def test_json_arguments_pass_and_return_their_encoded_size():
    args = (1, "two", 3.5, None, True, [1, (2, 3)], {"a": {"b": [None]}})

    size = check_arguments(args, {"flag": False}, LIMIT)

    expected = '[[1,"two",3.5,null,true,[1,[2,3]],{"a":{"b":[null]}}],{"flag":false}]'
    assert size == len(expected)


def test_datetime_in_a_dict_is_named_by_its_path_and_type():
    when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

    with pytest.raises(
        InvalidPayload, match=r"^args\[0\]\['when'\] is datetime\.datetime, "
    ):
        check_arguments(({"when": when},), {}, LIMIT)


def test_error_advises_passing_ids_and_strings():
    with pytest.raises(InvalidPayload, match=r"pass ids, strings and numbers"):
        check_arguments((dt.date(2024, 1, 1),), {}, LIMIT)


def test_model_instance_is_refused_with_its_class_path():
    with pytest.raises(
        InvalidPayload, match=r"^kwargs\['row'\] is tests\.models\.Execution, "
    ):
        check_arguments((), {"row": Execution(job_id=7)}, LIMIT)


def test_set_deep_in_a_list_is_refused():
    with pytest.raises(InvalidPayload, match=r"^kwargs\['a'\]\[1\]\['tags'\] is set, "):
        check_arguments((), {"a": [{}, {"tags": {1, 2}}]}, LIMIT)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_float_is_refused(value):
    with pytest.raises(InvalidPayload, match=r"^args\[1\] is .*which JSON cannot hold"):
        check_arguments((1.0, value), {}, LIMIT)


def test_non_str_dict_key_is_refused_with_its_type():
    with pytest.raises(
        InvalidPayload, match=r"^args\[0\] has a key 1 of type int; .* must be str"
    ):
        check_arguments(({1: "one"},), {}, LIMIT)


@pytest.mark.parametrize("value", [b"bytes", decimal.Decimal("1.5"), object()])
def test_other_types_are_refused(value):
    with pytest.raises(InvalidPayload, match=r"^args\[0\] is .*, which is not JSON"):
        check_arguments((value,), {}, LIMIT)


def test_invalid_payload_is_a_type_error_and_an_invalid_job():
    with pytest.raises(TypeError, match="is set") as caught:
        check_arguments(({1},), {}, LIMIT)
    assert isinstance(caught.value, InvalidJob)


def test_arguments_over_the_limit_report_size_and_limit():
    args = ("x" * 100,)  # encodes to [["xxx..."],{}]: 100 + 9 bytes

    assert check_arguments(args, {}, 109) == 109
    with pytest.raises(
        PayloadTooLarge, match=r"109 bytes, over the limit of 108 bytes .*MAX_PAYLOAD"
    ):
        check_arguments(args, {}, 108)


def test_result_path_is_named_result():
    check_result({"ok": [1, 2]})

    with pytest.raises(InvalidPayload, match=r"^result\['at'\] is datetime\.date, "):
        check_result({"at": dt.date(2024, 1, 1)})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a\x00b", r"args\[0\]\['note'\] contains a NUL character"),
        ("a\ud800b", r"args\[0\]\['note'\] is not valid Unicode \(it holds a lone"),
    ],
)
def test_text_no_database_can_store_is_refused(value, message):
    with pytest.raises(InvalidPayload, match=message):
        check_arguments(({"note": value},), {}, 1000)
