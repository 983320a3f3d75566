"""Characters <-> integer ids.

The default alphabet is the 80-character set that HWT and VATr use for IAM words
(letters, digits, space and 17 punctuation marks), in the same order they ship it, so a
checkpoint's character ids mean the same thing as theirs. Id 0 is reserved: it is the CTC
*blank* for the recognizer and the *padding* id for content queries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# The six letters the default vocabulary writes least (share of letters written, a 50k-word
# build: z 0.06 %, q 0.07 %, j 0.19 %, x 0.19 %, k 0.8 %, v 1.0 %): a writer of 300 words
# writes 'z' less than once, so a model trained on them scribbles it ("lazy"). Here, not in
# `dataset`, so that the CLI's parser can name them without importing numpy.
RARE_LETTERS = "jkqvxz"

IAM_ALPHABET = "Only thewigsofrcvdampbkuq.A-210xT5'MDL,RYHJ\"ISPWENj&BC93VGFKz();#:!7U64Q8?+*ZX/%"


class UnknownCharacterError(ValueError):
    """Raised when a text holds characters the charset cannot encode."""

    def __init__(self, text: str, unknown: Sequence[str]):
        self.text = text
        self.unknown = list(unknown)
        shown = ", ".join(repr(c) for c in self.unknown)
        super().__init__(
            f"{text!r} contains character(s) outside the charset: {shown}. "
            "Remove or replace them (e.g. Charset.clean(text, replace='?' or ''))."
        )


@dataclass(frozen=True)
class Charset:
    """Maps text to ids 1..len(alphabet) and back; 0 is blank/padding."""

    alphabet: str = IAM_ALPHABET
    _index: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError("Charset alphabet has repeated characters")
        object.__setattr__(self, "_index", {c: i + 1 for i, c in enumerate(self.alphabet)})

    @property
    def blank(self) -> int:
        return 0

    @property
    def num_classes(self) -> int:
        """Number of ids including the blank (the size of an embedding/classifier table)."""
        return len(self.alphabet) + 1

    def __len__(self) -> int:
        return len(self.alphabet)

    def __contains__(self, char: str) -> bool:
        return char in self._index

    def unknown(self, text: str) -> list[str]:
        """Distinct characters of `text` that the charset lacks, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self._index))

    def validate(self, text: str) -> str:
        if not text:
            raise ValueError("Empty text: there is nothing to write.")
        bad = self.unknown(text)
        if bad:
            raise UnknownCharacterError(text, bad)
        return text

    def clean(self, text: str, replace: str = "") -> str:
        """Replace (or drop) every character the charset lacks."""
        return "".join(c if c in self._index else replace for c in text)

    def encode(self, text: str) -> list[int]:
        self.validate(text)
        return [self._index[c] for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text, skipping blanks/padding (0)."""
        return "".join(self.alphabet[i - 1] for i in ids if 0 < i <= len(self.alphabet))

    def ctc_decode(self, ids: Iterable[int]) -> str:
        """Greedy CTC: collapse repeats, then drop blanks."""
        out, prev = [], None
        for i in ids:
            i = int(i)
            if i != prev and i != 0:
                out.append(i)
            prev = i
        return self.decode(out)
