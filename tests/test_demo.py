"""`make demo` picks test writers the shipped model did not train on."""

from __future__ import annotations

from pathlib import Path

from fixtures_iam import synthetic_sets

from scriptvit_lib.demo import demo_styles
from scriptvit_lib.words import WordSet

ROOT = Path(__file__).resolve().parents[1]


def test_demo_styles_skip_the_models_training_writers():
    sets = synthetic_sets(writers=("a-0", "b-0", "c-0"), words=("the", "of", "house", "and", "it"))
    test = WordSet([s for part in sets.values() for s in part])
    assert sorted(test.writers) == ["a-0", "b-0", "c-0"]
    labels = [label for label, _ in demo_styles(ROOT / "examples", test, n_test_writers=2)]
    assert labels[:2] == ["phone photo of a line (examples/)", "4 scanned words (examples/)"]
    assert [lab.split()[-1] for lab in labels[2:]] == ["a-0", "b-0"]
    labels = [label for label, _ in demo_styles(ROOT / "examples", test, n_test_writers=2, exclude={"a-0"})]
    assert [lab.split()[-1] for lab in labels[2:]] == ["b-0", "c-0"]
