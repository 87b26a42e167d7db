"""A cooperative task scheduler with priorities, retries and a small CLI."""

import asyncio
import heapq
import itertools
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field

_ids = itertools.count()
DEFAULT_RETRIES = 2
log_lines = []


def log(message, *args):
    log_lines.append(message % args if args else message)


@dataclass(order=True)
class Task:
    priority: int
    name: str = field(compare=False)
    action: object = field(compare=False, default=None)
    retries: int = field(compare=False, default=DEFAULT_RETRIES)
    ident: int = field(default_factory=lambda: next(_ids))


class TaskFailed(Exception):
    def __init__(self, task, cause):
        super().__init__(f"{task.name} failed: {cause}")
        self.task = task
        self.cause = cause


@contextmanager
def timed(label):
    import time
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        log("%s took %.3f s", label, elapsed)


class Scheduler:
    def __init__(self, max_failures=3):
        self.queue = []
        self.done = []
        self.failures = 0
        self.max_failures = max_failures

    def submit(self, name, action, priority=0, **options):
        task = Task(priority, name, action, **options)
        heapq.heappush(self.queue, task)
        return task.ident

    def _run_one(self, task):
        attempt = 0
        while True:
            try:
                result = task.action()
            except Exception as exc:
                attempt += 1
                if attempt > task.retries:
                    raise TaskFailed(task, exc)
                log("retrying %s (%d)", task.name, attempt)
                continue
            else:
                return result

    def run(self):
        results = {}
        while self.queue:
            task = heapq.heappop(self.queue)
            with timed(task.name):
                try:
                    results[task.name] = self._run_one(task)
                except TaskFailed as failure:
                    self.failures += 1
                    results[task.name] = None
                    log("%s", failure)
                    if self.failures >= self.max_failures:
                        break
            self.done.append(task)
        return results

    def pending(self):
        return sorted((t.priority, t.name) for t in self.queue)


async def gather_all(coroutines, limit=4):
    semaphore = asyncio.Semaphore(limit)
    finished = 0

    async def guarded(coro):
        nonlocal finished
        async with semaphore:
            value = await coro
        finished += 1
        return value

    values = await asyncio.gather(*(guarded(c) for c in coroutines))
    return values, finished


def describe(event):
    match event:
        case {"kind": "submit", "name": str(name), **rest}:
            return f"submit {name} {sorted(rest)}"
        case ("tick", count) if count > 0:
            return "tick x%d" % count
        case Task(name=name, priority=p) as task:
            return f"task {name} at {p} ({task.ident})"
        case [first, *others]:
            return f"batch of {1 + len(others)} starting with {first}"
        case _:
            return "unknown"


def flaky(threshold):
    calls = 0

    def action():
        nonlocal calls
        calls += 1
        if calls < threshold:
            raise ValueError("not yet")
        return calls

    return action


def main(argv):
    scheduler = Scheduler()
    for i, name in enumerate(argv or ["a", "b", "c"]):
        scheduler.submit(name, flaky(i + 1), priority=-i)
    scheduler.submit("bad", flaky(10), retries=1)
    results = scheduler.run()
    for key in sorted(results):
        print(key, results[key])
    if (n := len(log_lines)) > 0:
        print(n, "log lines")
    squares = asyncio.run(gather_all([asyncio.sleep(0, k * k) for k in range(3)]))
    print(describe({"kind": "submit", "name": "x", "at": 1}), squares)
    return 0 if scheduler.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
