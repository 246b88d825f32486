"""Where the claims come from: the seed documents' bibliographic data, read from their texts.

A claim's quote names a document by key; :func:`cite` renders it as title, author, date (and
section). The seed files live in the project's ``shared/seeds/`` (outside this repository); their
file names are kept only to find them, never shown as a source.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DOCUMENTS", "SEED_KEYS", "Document", "cite"]


@dataclass(frozen=True)
class Document:
    """Bibliographic data of a source: ``title``, ``author``, ``date`` as the text gives them
    (None where it gives none), ``kind``, and the seed file it was read from (seeds only)."""

    title: str
    author: str | None
    date: str | None
    kind: str
    file: str | None = None


DOCUMENTS: dict[str, Document] = {
    # front matter: title "The gradient problem in RNN", date 2019-01-04; no author line
    "000": Document(
        "The gradient problem in RNN",
        None,
        "2019-01-04",
        "blog post (Markdown source)",
        "000_d15d2742e1e61326.txt",
    ),
    # the same post as rendered HTML: "Friday, January 4, 2019", with four more LSTM paragraphs
    "001": Document(
        "The gradient problem in RNN",
        None,
        "4 January 2019",
        "blog post (rendered page)",
        "001_0a600edc1c51c1e3.txt",
    ),
    # header: Title, Date 2019-06-23 16:23, Author jinhaochan
    "002": Document(
        "RNN and Vanishing/Exploding Gradients",
        "jinhaochan",
        "2019-06-23",
        "blog post",
        "002_a65d3e21bc879e4d.txt",
    ),
    # first heading; lecture notes in the style of a course on NLP with deep learning, undated
    "003": Document(
        "Vanishing Gradients, Fancy RNNs",
        None,
        None,
        "lecture notes",
        "003_799d76786207fd3a.txt",
    ),
    # no title line: the text opens with the heading "Introduction"
    "004": Document(
        "untitled article on RNNs, vanishing gradients and LSTM (opens with \u201cIntroduction\u201d)",
        None,
        None,
        "web article",
        "004_f8d0850097bc0c97.txt",
    ),
    "pascanu2013": Document(
        "On the difficulty of training recurrent neural networks",
        "R. Pascanu, T. Mikolov, Y. Bengio",
        "2013",
        "paper (ICML)",
    ),
    "hochreiter1997": Document(
        "Long Short-Term Memory",
        "S. Hochreiter, J. Schmidhuber",
        "1997",
        "paper (Neural Computation)",
    ),
    "feng2024": Document(
        "Were RNNs All We Needed?",
        "L. Feng, F. Tung, M. O. Ahmed, Y. Bengio, H. Hajimirsadeghi",
        "2024",
        "paper (arXiv:2410.01201)",
    ),
    "chang2019": Document(
        "AntisymmetricRNN: A Dynamical System View on Recurrent Neural Networks",
        "B. Chang, M. Chen, E. Haber, E. H. Chi",
        "2019",
        "paper (ICLR)",
    ),
    "arjovsky2016": Document(
        "Unitary Evolution Recurrent Neural Networks",
        "M. Arjovsky, A. Shah, Y. Bengio",
        "2016",
        "paper (ICML)",
    ),
    "lezcano2019": Document(
        "Cheap Orthogonal Constraints in Neural Networks: A Simple Parametrization of the Orthogonal and Unitary Group",
        "M. Lezcano-Casado, D. Mart\u00ednez-Rubio",
        "2019",
        "paper (ICML)",
    ),
    "orvieto2023": Document(
        "Resurrecting Recurrent Neural Networks for Long Sequences",
        "A. Orvieto, S. L. Smith, A. Gu, A. Fernando, C. Gulcehre, R. Pascanu, S. De",
        "2023",
        "paper (ICML)",
    ),
    "gu2023": Document(
        "Mamba: Linear-Time Sequence Modeling with Selective State Spaces",
        "A. Gu, T. Dao",
        "2023",
        "paper (arXiv:2312.00752)",
    ),
    "rusch2021": Document(
        "Coupled Oscillatory Recurrent Neural Network (coRNN): An accurate and (gradient) stable architecture "
        "for learning long time dependencies",
        "T. K. Rusch, S. Mishra",
        "2021",
        "paper (ICLR)",
    ),
    "torch": Document(
        "torch.nn.utils.clip_grad_value_ (documentation)",
        "PyTorch",
        None,
        "API documentation",
    ),
}

#: The five seed documents, in file order.
SEED_KEYS = ("000", "001", "002", "003", "004")


def cite(doc: str, section: str = "") -> str:
    """``Title``, author, date, section: the readable source of a quote."""
    d = DOCUMENTS[doc]
    parts = [f"\u201c{d.title}\u201d" if not d.title.startswith("untitled") else d.title]
    parts.append(d.author or "author not named")
    parts.append(d.date or "undated")
    if section:
        parts.append(f"\u00a7 {section}")
    return ", ".join(parts)
