"""Readers of what the tracking libraries wrote, with the libraries' own formats: TensorBoard's event accumulator and
W&B's offline run files (its protobuf records in a LevelDB-style log). Shared by the tracking and sweep tests."""

import json
import struct
from pathlib import Path


def read_tensorboard(logdir: Path):
    """Every event under ``logdir``, as TensorBoard's accumulator reads them (purged steps dropped)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def wandb_folders(parent: Path) -> list[Path]:
    """The W&B offline run folders under ``parent``/wandb, oldest first."""
    return sorted((parent / "wandb").glob("offline-run-*"))


LOG_BLOCK = 32768
"""W&B's .wandb files are a LevelDB-style log: 32 KiB blocks of records with a 7-byte header each."""


def wandb_records(path: Path) -> list:
    """The protobuf records of one offline .wandb file (its header is ':W&B', a 2-byte magic and a version)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, pending, records = 7, b"", []
    while position + 7 <= len(data):
        if LOG_BLOCK - position % LOG_BLOCK < 7:  # a block's tail too short for a header is padding
            position += LOG_BLOCK - position % LOG_BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if kind == 0:
            break
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def finished_wandb_records(path: Path) -> list:
    """The records of a finished offline run, read at once: W&B's service writes a run's file when it closes the
    run's stream, and erdiff (the last run of a process) and the sweep's driver wait for that (wandb.teardown),
    so the file is whole as soon as training or the sweep returns."""
    records = wandb_records(path)
    kinds = [record.WhichOneof("record_type") for record in records]
    assert "run" in kinds and "exit" in kinds, f"{path} ({path.stat().st_size} bytes) is not a finished run: {kinds}"
    return records


def read_wandb_run(folder: Path) -> dict:
    """What one offline run folder holds: the run's id, name, group, tags, config and history by step."""
    (path,) = folder.glob("run-*.wandb")
    run, config, history = None, {}, {}
    for record in finished_wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            config.update({item.key: json.loads(item.value_json) for item in run.config.update})
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            items = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            history[items.pop("_step")] = items
    return {"id": run.run_id, "name": run.display_name, "group": run.run_group, "tags": list(run.tags),
            "project": run.project, "config": {k: v.get("value", v) if isinstance(v, dict) else v
                                               for k, v in config.items()}, "history": history}
