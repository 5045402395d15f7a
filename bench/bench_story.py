#!/usr/bin/env python3
"""CPU time of the offline story parser on 20,000-character stories (the story limit), ordinary and
hostile: many quotation marks that never close, hundreds of speech tags, one "sentence" with no full
stop, unbroken Chinese text. Each should stay well under a second: the parser runs on the web app's
request path. Prints the median of a few runs per story, with the machine and the date.

    python bench/bench_story.py
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import time

from storyface.limits import MAX_STORY_CHARS
from storyface.story.offline import parse_story_offline

CAST = ["Grace Hopper", "Eileen Collins", "格蕾丝·霍珀"]
ORDINARY = (
    'Grace Hopper met Eileen Collins at the museum. "Check the navigation code," Eileen said. '
    "She sat down at her desk; it was raining outside.\n\"Look,\" she said, \"a moth.\"\n"
)
STORIES = {
    "ordinary story with dialogue": ORDINARY,
    "opening quotes that never close": "Grace ‘a ",
    "apostrophes and single quotes": "Grace 'a ",
    "one sentence of 2,000 quotations": 'Grace "a" ',
    "a speech tag every 17 characters": '"a," Grace said, ',
    "pronouns and clause cuts": "Grace met Eileen and she ",
    "unbroken Chinese with quotations": "格蕾丝“你好”",
    "2,800 one-word sentences": "Grace. ",
}
RUNS = 3


def main() -> None:
    print(f"offline story parser, {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {dt.date.today()}")  # fmt: skip
    for label, unit in STORIES.items():
        story = (unit * (MAX_STORY_CHARS // len(unit) + 1))[: MAX_STORY_CHARS - 1]
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            script = parse_story_offline(story, CAST)
            times.append(time.perf_counter() - started)
        print(f"  {label:38s} {len(story):6,} chars  {statistics.median(times) * 1000:7.0f} ms  {len(script.panels)} panels")


if __name__ == "__main__":
    main()
