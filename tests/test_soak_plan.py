"""What `musika bench --soak` does to the host and the daemon (bench.cli.soak_plan): every change a producer makes
in a set, in time order, and the preset it measures always back before the next switch."""

from __future__ import annotations

from bench.cli import soak_plan


def test_the_soak_switches_to_another_preset_and_back_between_its_other_changes():
    plan = soak_plan(10.0, "piano", "techno")
    assert [d[0] for d in plan] == sorted(d[0] for d in plan)
    switches = [(t, name) for t, action, name in plan if action == "preset"]
    assert switches == [(75.0, "piano"), (105.0, "techno"), (225.0, "piano"), (255.0, "techno"), (375.0, "piano"),
                        (405.0, "techno"), (525.0, "piano"), (555.0, "techno")]
    actions = {a for _, a, _ in plan}
    assert actions == {"seed", "variation", "stall", "stop", "locate", "preset"}
    assert not any(a == "preset" for _, a, _ in soak_plan(10.0))  # one preset installed: nothing to switch to
