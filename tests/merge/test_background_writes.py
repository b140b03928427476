"""Writes handed on by a disk merge: in order, slots reused only once written, errors
raised in the merging thread. GPU merges write on a second thread, CPU merges inline."""

import threading

import pytest
import torch

from evomerge.merge.to_disk import BackgroundWrites


class RecordingWriter:
    def __init__(self, fail_on: str | None = None):
        self.written: list[tuple[str, list[float], str]] = []
        self.fail_on = fail_on

    def add(self, name: str, tensor: torch.Tensor) -> None:
        if name == self.fail_on:
            raise OSError(f"disk full while writing {name}")
        self.written.append((name, tensor.tolist(), threading.current_thread().name))


@pytest.mark.parametrize("inline", [False, True])
def test_every_tensor_is_written_in_order_from_its_own_slot(inline):
    writer = RecordingWriter()
    buffers = [torch.empty(2), torch.empty(2)]
    with BackgroundWrites(writer, inline=inline) as background:
        for i in range(5):
            slot = background.free_slot()
            # reusing the slot's buffer is safe: its previous write has finished
            background.add(slot, f"t{i}", buffers[slot].fill_(float(i)))
        background.wait()
    assert [(n, v) for n, v, _ in writer.written] == [(f"t{i}", [float(i)] * 2)
                                                      for i in range(5)]
    threads = {t for _, _, t in writer.written}
    if inline:
        assert threads == {threading.current_thread().name}
    else:
        assert all(t.startswith("evomerge-write") for t in threads)


@pytest.mark.parametrize("inline", [False, True])
def test_a_failed_write_is_raised_to_the_merging_thread(inline):
    writer = RecordingWriter(fail_on="t1")
    with pytest.raises(OSError, match="disk full while writing t1"):
        with BackgroundWrites(writer, inline=inline) as background:
            for i in range(4):
                background.add(background.free_slot(), f"t{i}", torch.zeros(1))
            background.wait()
    names = [n for n, _, _ in writer.written]
    # a background write fails where its slot is next reused, so one more tensor may
    # have gone out meanwhile; the writer then removes the unfinished folder
    assert names[0] == "t0" and "t1" not in names and len(names) <= BackgroundWrites.SLOTS
