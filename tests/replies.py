"""Test helpers: a finished reply's text or token ids that also carry the reply's stats."""

from __future__ import annotations

from app.chat import Reply, ReplyStats


class Said(str):
    """A reply's whole text, with .stats."""

    stats: ReplyStats


class Ids(list):
    """A reply's generated token ids, with .stats."""

    stats: ReplyStats


def said(reply: Reply) -> Said:
    """Run a reply to the end; its text with its stats."""
    out = Said("".join(reply))
    out.stats = reply.stats
    return out


def ids_of(text: Said) -> Ids:
    """The token ids a finished reply generated, with its stats."""
    out = Ids(text.stats.token_ids)
    out.stats = text.stats
    return out
