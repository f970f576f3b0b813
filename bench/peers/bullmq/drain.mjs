// BullMQ reference drain: ready jobs added with addBulk, drained by worker
// processes (child_process.fork of this file), timed like bench/run.py.
//
// Usage (from bench/peers/bullmq, after `npm ci`):
//
//   node drain.mjs [--jobs 10000] [--body noop|incr] [--processes 2]
//                  [--concurrency 8] [--redis redis://127.0.0.1:6379/12]
//
// Progress goes to stderr; the last line on stdout is one JSON object of the
// figures. Only the Redis database of --redis (default 12) is flushed.

import { fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';

const QUEUE = 'bench';
const COUNTER = 'bench:incr';
const REPORT_MS = 20;
const CHUNK = 1000;

const { values: opts } = parseArgs({
  options: {
    jobs: { type: 'string', default: '10000' },
    body: { type: 'string', default: 'noop' },
    processes: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '8' },
    redis: { type: 'string', default: 'redis://127.0.0.1:6379/12' },
    timeout: { type: 'string', default: '300' },
    worker: { type: 'boolean', default: false },
  },
});

// Wall-clock seconds with sub-millisecond resolution, comparable across
// processes.
const now = () => (performance.timeOrigin + performance.now()) / 1000;

function connection() {
  const url = new URL(opts.redis);
  return {
    host: url.hostname,
    port: Number(url.port || 6379),
    db: Number(url.pathname.slice(1) || 0),
    maxRetriesPerRequest: null,
  };
}

// -- one worker process ------------------------------------------------------

async function runWorker() {
  const span = { count: 0, first: Infinity, last: 0 };
  const client = new IORedis(connection());
  const processor =
    opts.body === 'incr'
      ? async () => {
          const start = now();
          await client.incr(COUNTER);
          record(span, start, now());
        }
      : async () => {
          const start = now();
          record(span, start, now());
        };
  const cpu = process.cpuUsage();
  const worker = new Worker(QUEUE, processor, {
    connection: connection(),
    concurrency: Number(opts.concurrency),
  });
  worker.on('error', (err) => console.error('[bullmq worker]', err));
  const timer = setInterval(() => process.send({ span }), REPORT_MS);
  process.on('message', async (message) => {
    if (message !== 'stop') return;
    clearInterval(timer);
    await worker.close();
    await client.quit();
    const used = process.cpuUsage(cpu);
    process.send({ span, cpu: (used.user + used.system) / 1e6, final: true }, () =>
      process.exit(0),
    );
  });
}

function record(span, start, end) {
  span.count += 1;
  if (start < span.first) span.first = start;
  if (end > span.last) span.last = end;
}

// -- the driver --------------------------------------------------------------

async function enqueue(jobs) {
  const queue = new Queue(QUEUE, { connection: connection() });
  await queue.waitUntilReady();
  const started = performance.now();
  for (let i = 0; i < jobs; i += CHUNK) {
    const size = Math.min(CHUNK, jobs - i);
    await queue.addBulk(
      Array.from({ length: size }, () => ({
        name: opts.body,
        data: {},
        opts: { removeOnComplete: true, removeOnFail: true },
      })),
    );
  }
  const rate = jobs / ((performance.now() - started) / 1000);
  await queue.close();
  return rate;
}

async function serverCpu(client) {
  const info = await client.info('cpu');
  const field = (name) => Number(info.match(new RegExp(`${name}:([0-9.]+)`))[1]);
  return field('used_cpu_user') + field('used_cpu_sys');
}

function spawnWorkers(count) {
  const children = [];
  for (let i = 0; i < count; i += 1) {
    const args = process.argv.slice(2).filter((a) => a !== '--worker');
    const child = fork(new URL(import.meta.url).pathname, [...args, '--worker']);
    const state = { child, span: { count: 0, first: Infinity, last: 0 }, cpu: 0 };
    child.on('message', (message) => {
      state.span = message.span;
      if (message.final) state.cpu = message.cpu;
    });
    child.on('exit', (code) => {
      state.exited = true;
      if (code && !state.stopping) {
        console.error(`[bullmq] worker exited with ${code}`);
        process.exit(1);
      }
    });
    children.push(state);
  }
  return children;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitDone(children, jobs) {
  const deadline = performance.now() + Number(opts.timeout) * 1000;
  while (performance.now() < deadline) {
    const done = children.reduce((sum, c) => sum + (c.span.count || 0), 0);
    if (done >= jobs) return;
    await sleep(10);
  }
  throw new Error(`timed out after ${opts.timeout} s`);
}

async function stopWorkers(children) {
  await Promise.all(
    children.map(
      (c) =>
        new Promise((resolve) => {
          c.stopping = true;
          if (c.exited) return resolve();
          c.child.once('exit', resolve);
          c.child.send('stop');
        }),
    ),
  );
}

async function main() {
  const jobs = Number(opts.jobs);
  const client = new IORedis(connection());
  await client.flushdb();
  const enqueueRate = await enqueue(jobs);
  console.error(`[bullmq] enqueued ${jobs} ${opts.body} jobs (${enqueueRate.toFixed(0)} jobs/s)`);
  const redisCpu = await serverCpu(client);
  const started = performance.now();
  const children = spawnWorkers(Number(opts.processes));
  await waitDone(children, jobs);
  const wall = (performance.now() - started) / 1000;
  await stopWorkers(children);
  const redisUsed = (await serverCpu(client)) - redisCpu;
  if (opts.body === 'incr') {
    const value = Number(await client.get(COUNTER));
    if (value !== jobs) throw new Error(`counter is ${value}, expected ${jobs}`);
  }
  const left = await client.dbsize();
  await client.quit();
  const spans = children.map((c) => c.span).filter((s) => s.count);
  const span = Math.max(...spans.map((s) => s.last)) - Math.min(...spans.map((s) => s.first));
  const cpu = children.reduce((sum, c) => sum + c.cpu, 0);
  const result = {
    peer: 'bullmq',
    version: (await import('bullmq/package.json', { with: { type: 'json' } })).default
      .version,
    body: opts.body,
    jobs,
    processes: Number(opts.processes),
    concurrency: Number(opts.concurrency),
    enqueue_rate: enqueueRate,
    wall,
    wall_rate: jobs / wall,
    span,
    row_rate: jobs / span,
    cpu_us: (cpu / jobs) * 1e6,
    redis_cpu_us: (redisUsed / jobs) * 1e6,
    redis_keys_left: left,
  };
  console.error(
    `[bullmq] drain: wall ${wall.toFixed(2)} s (${result.wall_rate.toFixed(0)} jobs/s), ` +
      `span ${result.row_rate.toFixed(0)} jobs/s, worker CPU ${result.cpu_us.toFixed(0)} us/job`,
  );
  console.log(JSON.stringify(result));
}

if (opts.worker) {
  runWorker();
} else {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
