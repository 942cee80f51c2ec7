"""Headless progress lines and counted nouns (what the CLI and the operator print)."""

from pointmap.core.progress import Progress, console_progress, count


def test_count_says_one_view_not_one_views():
    assert count(1, "view") == "1 view" and count(0, "view") == "0 views" and count(3, "view") == "3 views"


def test_console_progress_prints_each_stage_change_at_once(capsys):
    show = console_progress()
    for done in range(5):
        show(Progress("pairs", done, 4, "decoding"))
    show(Progress("align", 0, 10))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "pointmap: pairs 0/4 decoding" and lines[-1] == "pointmap: align 0/10"
    assert len(lines) == 6   # every 25 % step of 'pairs' crosses a 10 % mark, then the stage change
