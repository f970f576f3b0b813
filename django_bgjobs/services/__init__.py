"""The only door for the admin, the API and the metrics: reads in
``queries``, writes in ``operations``, so their figures and effects agree."""
