"""The one exception the management layer raises for bad input."""

from __future__ import annotations

from policies.messages import gettext


class InputError(ValueError):
    """Bad input for a management operation (CLI or console); the message is one line for a human.

    `message` is a Spanish gettext msgid (marked with N_) with %(name)s placeholders filled from
    `params` (an InputError among them said in the same language), so each face can say it in its
    reader's language; str() is the Spanish text.
    """

    def __init__(self, message: str, **params: object) -> None:
        self.message, self.params = message, params
        super().__init__(self.say("es"))

    def say(self, language: str) -> str:
        """The message in `language` (Spanish when there is no catalog for it)."""
        text = gettext(self.message, language)
        # a nested InputError (a CSV line wrapping its column's fault) speaks the same language
        params = {k: v.say(language) if isinstance(v, InputError) else v for k, v in self.params.items()}
        return text % params if params else text


def printable(text: str) -> bool:
    """True when `text` holds no control character (they could split a log or a CSV line)."""
    return not any(ord(c) < 32 or ord(c) == 127 for c in text)
