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


def test_warnings_are_printed_when_known_not_after_the_run(photos, capsys):
    """A skipped photo and a focal length given in metres are known before the network runs: a headless run
    prints them then (before any pair is decoded), once each, and keeps them in Reconstruction.warnings."""
    from conftest import tiny_checkpoint
    from pointmap.core import reconstruct
    from pointmap.core.options import AlignOptions, ReconstructOptions

    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    show = console_progress()
    options = ReconstructOptions(image_size=64, device="cpu", known_focal_mm=0.035,
                                 align=AlignOptions(iterations=5))
    rec = reconstruct(str(photos), tiny_checkpoint(), options, progress=show)
    lines = capsys.readouterr().out.splitlines()
    focal = [k for k, s in enumerate(lines) if s.startswith("pointmap: warning: The known focal length is 0.035 mm")]
    skipped = [k for k, s in enumerate(lines) if s.startswith("pointmap: warning: Skipped") and "broken.jpg" in s]
    first_pair = next(k for k, s in enumerate(lines) if s.startswith("pointmap: pairs"))
    assert len(focal) == 1 and len(skipped) == 1
    assert focal[0] < first_pair and skipped[0] < first_pair
    assert "field of view" in lines[focal[0]] and "millimetres" in lines[focal[0]]
    assert any("0.035 mm" in w for w in rec.warnings) and any("broken.jpg" in w for w in rec.warnings)
    assert show.unshown(rec.warnings) == []          # nothing left for the CLI to print at the end


def test_unit_warnings():
    from pointmap.core.options import ReconstructOptions

    assert ReconstructOptions(known_focal_mm=35.0).unit_warnings() == []
    assert ReconstructOptions(sensor_width_mm=0.2).unit_warnings() == []      # unused without a known focal
    (w,) = ReconstructOptions(known_focal_mm=35.0, sensor_width_mm=0.2).unit_warnings()
    assert "0.2 mm" in w and "1–150 mm" in w
    (w,) = ReconstructOptions(known_focal_mm=0.05).unit_warnings()
    assert "0.05 mm, below 1 mm" in w and "a 180° field of view" in w
