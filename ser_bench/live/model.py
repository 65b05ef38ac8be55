"""The model behind a live stream: loaded as `predict` loads it, refused where it has no calibration (a live app
must be able to say `uncertain`), and described so that nobody mistakes it for an oracle."""

from __future__ import annotations

from ser_bench.errors import UserError


def load(specs: list[str], tracking_uri: str, batch_size: int = 16):
    from ser_bench.predict import load_model

    model = load_model(specs, tracking_uri, batch_size)
    for member in model.members:
        if not member.meta.get("calibrated", member.temperature != 1.0):
            run = member.meta.get("run_id", "RUN_ID")
            raise UserError(f"{member.name} has no calibration (no temperature fitted on validation actors), so its "
                            f"confidence means little live: make its model again with `python -m ser_bench.export "
                            f"{run} --rebuild`")
    return model


def card(model) -> dict:
    """What the page and the terminal say about the model: its name, its test UA on unseen speakers, the protocol."""
    members = model.members
    first = members[0].meta
    uas = [m.meta.get("test_ua") for m in members]
    ua = f"{sum(uas) / len(uas):.3f}" if all(isinstance(u, int | float) for u in uas) else "unknown"
    protocol = (f"{first.get('corpus', '?')}, {first.get('split', '?')} fold {first.get('fold', '?')}, test actors "
                f"{first.get('actors_test', '?')} never seen in training" if first.get("split") else
                "protocol unknown (a model folder without its run)")
    name = model.describe() if len(members) > 1 else members[0].name
    return {"name": name, "test_ua": ua, "protocol": protocol, "classes": list(model.class_names),
            "members": len(members), "ensemble": len(members) > 1}
