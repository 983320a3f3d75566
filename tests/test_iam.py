"""IAM contract: the words.txt/forms.txt loader, split files, and the IAM-32.pickle reader/writer."""

import builtins
import io
import os
import pickle

import numpy as np
import pytest
from fixtures_iam import CORRUPT, ERR, FORMS, MISSING, SPACED, UNKNOWN, make_raw_iam, synthetic_sets
from PIL import Image

from scriptvit_lib.cli import UserError
from scriptvit_lib.iam import load_iam_words, make_iam_fixture, read_iam_pickle, write_iam_pickle


@pytest.fixture()
def raw(tmp_path):
    return tmp_path, make_raw_iam(tmp_path)


def _load(root, bad=2, verbose=False, **kw):
    stats = {}
    with pytest.warns(UserWarning, match=f"{bad} missing or unreadable IAM image"):
        sets = load_iam_words(root, verbose=verbose, stats=stats, **kw)
    return sets, stats


def _by_writer(ws):
    return {w: [s.text for s in ws.of_writer(w)] for w in ws.writers}


def test_load_gives_writers_texts_and_32px_images(raw):
    root, words = raw
    sets, stats = _load(root)
    # default split: sorted writers, every third to test
    assert set(sets["train"].writers) == {"000", "001", "003", "004"}
    assert set(sets["test"].writers) == {"002", "005"}
    kept = {w: (wr, t) for w, (wr, t, _) in words.items() if w not in (UNKNOWN, CORRUPT, MISSING)}
    got = sorted((s.writer, s.text) for ws in sets.values() for s in ws)
    assert got == sorted(kept.values())
    assert words[SPACED][1] == "to be" and words[ERR][1] == "stop"
    assert ("005", "to be") in got and ("000", "stop") in got  # spaced text and the 'err' word kept
    for ws in sets.values():
        for s in ws:
            assert s.image.dtype == np.uint8 and s.image.shape[0] == 32
            assert np.median(s.image) > 200 and s.image.min() < 100  # dark ink on white paper
    h, w = words["a01-000u-00-00"][2]
    assert sets["train"].of_writer("000")[0].image.shape[1] == round(w * 32 / h)  # aspect kept
    assert stats["kept"] == {"train": 14, "test": 7}
    assert stats["skipped"]["characters outside the charset"] == 1 and stats["unknown_chars"] == {"é": 1}
    assert sorted(stats["bad_images"]) == sorted([CORRUPT, MISSING])


def test_skip_err_and_height_none(raw, capsys):
    root, words = raw
    sets, stats = _load(root, skip_err=True, height=None, verbose=True)
    assert "not the GANwriting/HWT/VATr split" in capsys.readouterr().out
    assert stats["skipped"]["err segmentation"] == 1
    assert "stop" not in [s.text for s in sets["train"].of_writer("000")]
    s = sets["train"].of_writer("000")[0]
    assert s.image.shape == words["a01-000u-00-00"][2]


def _split_lines(kind, writers, words):
    forms = [f for f, wr in FORMS.items() if wr in writers]
    ids = [w for w, (wr, _, _) in words.items() if wr in writers]
    return {
        "writer": [str(int(w)) if w == "004" else w for w in writers],  # '4' also means '004'
        "form": forms,
        "word": [f"{i} {words[i][1]}," for i in ids],  # ids may be followed by text, even a comma
        "gt": [f"{words[i][0]},{i} {words[i][1]}" for i in ids],  # GANwriting's .filter27 lines
    }[kind]


@pytest.mark.parametrize("kind", ["writer", "form", "word", "gt"])
def test_split_files_of_each_kind(raw, kind):
    root, words = raw
    files = []
    for name, writers in (("train", ["000", "002", "004"]), ("test", ["001", "005"])):
        files.append(root / f"{name}.txt")
        files[-1].write_text("\n".join(_split_lines(kind, writers, words)) + "\n")
    # '003' (and its corrupt png) is in neither file: only the missing d04-050-01-01 is reported
    sets, stats = _load(root, bad=1, split_files=tuple(files))
    assert set(sets["train"].writers) == {"000", "002", "004"}
    assert set(sets["test"].writers) == {"001", "005"}
    assert not set(sets["train"].writers) & set(sets["test"].writers)
    assert stats["skipped"]["not in the split files"] == 4
    assert _by_writer(sets["test"])["005"] == ["A", "MOVE", "to", "to be"]


def test_bad_split_files_are_user_errors(raw):
    root, words = raw
    mixed, word_twice = root / "mixed.txt", root / "twice.txt"
    mixed.write_text("000\na01-003\n")
    with pytest.raises(UserError, match="one kind a file"):
        load_iam_words(root, split_files=(mixed, mixed), verbose=False)
    word_twice.write_text("a01-000u-00-00\n")
    with pytest.raises(UserError, match="in both split files"):
        load_iam_words(root, split_files=(word_twice, word_twice), verbose=False)
    with pytest.raises(UserError, match="split file not found"):
        load_iam_words(root, split_files=(root / "nope.txt", mixed), verbose=False)


def test_missing_root_and_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="IAM folder not found"):
        load_iam_words(tmp_path / "no-such-dir")
    (tmp_path / "words").mkdir()
    with pytest.raises(UserError, match="forms.txt not found"):
        load_iam_words(tmp_path)
    with pytest.raises(UserError, match="pickle not found"):
        read_iam_pickle(tmp_path / "IAM-32.pickle")


def test_make_iam_fixture_round_trip(tmp_path):
    sets = synthetic_sets()
    paths = make_iam_fixture(tmp_path / "iam", sets)
    back = load_iam_words(tmp_path / "iam", split_files=(paths["train"], paths["test"]), verbose=False)
    for name in sets:
        assert [(s.writer, s.text) for s in back[name]] == [(s.writer, s.text) for s in sets[name]]
        for a, b in zip(sets[name], back[name]):
            np.testing.assert_array_equal(a.image, b.image)


def test_pickle_round_trip_in_hwt_layout(tmp_path):
    sets = synthetic_sets()
    path = write_iam_pickle(sets, tmp_path / "IAM-32.pickle")
    assert os.listdir(tmp_path) == ["IAM-32.pickle"]  # no temp file left behind
    with open(path, "rb") as f:  # what HWT/VATr's TextDataset reads
        raw = pickle.load(f)
    entry = raw["train"]["w1"][0]
    assert isinstance(entry["img"], Image.Image) and entry["label"] == "the"
    assert np.asarray(entry["img"].convert("L")).shape[0] == 32
    back = read_iam_pickle(path, verbose=False)
    for name in sets:
        assert [(s.writer, s.text) for s in back[name]] == [(s.writer, s.text) for s in sets[name]]
        for a, b in zip(sets[name], back[name]):
            np.testing.assert_array_equal(a.image, b.image)


def _png_file_image(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    buf.seek(0)
    return Image.open(buf)  # a PngImageFile: pickles under PIL.PngImagePlugin


@pytest.mark.parametrize("variant", ["protocol0", "protocol2", "numpy-0d", "npy-file", "inverted"])
def test_pickle_variants_others_wrote(tmp_path, variant):
    word = synthetic_sets()["train"][0]
    stored = 255 - word.image if variant == "inverted" else word.image  # white on black: inverted back
    rgb = Image.fromarray(stored).convert("RGB")
    data = {
        "train": {
            "000": [{"img": rgb, "label": "the"}, {"img": _png_file_image(stored), "label": "the"}],
            "None": [],
        },  # HWT's builder leaves an empty 'None' writer
        "test": {"001": [{"img": rgb, "label": b"the"}]},
    }
    path = tmp_path / "IAM-32.pickle"
    if variant == "npy-file":
        with open(path, "wb") as f:
            np.save(f, np.array(data, dtype=object), allow_pickle=True)
    else:
        obj = np.array(data, dtype=object) if variant == "numpy-0d" else data
        path.write_bytes(pickle.dumps(obj, protocol={"protocol0": 0, "protocol2": 2}.get(variant, 4)))
    sets = read_iam_pickle(path, verbose=False)
    assert set(sets) == {"train", "test"} and sets["train"].writers == ["000"]
    for s in (*sets["train"], *sets["test"]):
        assert s.text == "the"
        np.testing.assert_array_equal(s.image, word.image)


class _Evil:
    def __init__(self, call, arg):
        self.call, self.arg = call, arg

    def __reduce__(self):
        return (self.call, (self.arg,))


@pytest.mark.parametrize("call", [os.system, builtins.exec, builtins.eval])
def test_restricted_unpickler_refuses_code(tmp_path, call):
    marker = tmp_path / "pwned"
    code = f"touch {marker}" if call is os.system else f"open({str(marker)!r}, 'w').close()"
    hidden = {"train": {"000": [{"img": _Evil(call, code), "label": "x"}]}, "test": {}}
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps(hidden))
    with pytest.raises(UserError, match=rf"refused to load \w+\.{call.__name__}"):
        read_iam_pickle(path)
    assert not marker.exists()


def test_broken_pickle_is_a_user_error(tmp_path):
    path = write_iam_pickle(synthetic_sets(), tmp_path / "IAM-32.pickle")
    path.write_bytes(path.read_bytes()[:200])  # an interrupted download
    with pytest.raises(UserError, match="not a readable IAM pickle"):
        read_iam_pickle(path)
    path.write_bytes(pickle.dumps(["not", "a", "dict"]))
    with pytest.raises(UserError, match="expected"):
        read_iam_pickle(path)
