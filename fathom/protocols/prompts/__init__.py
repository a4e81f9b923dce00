"""Every sentence addressed to a model, one module per audience, and how prompt files are loaded.

* :mod:`.search`: the search model (system prompts, forced-answer note, notes on bad turns);
* :mod:`.tools`: the tool descriptions it is shown and the errors of calls that cannot run;
* :mod:`.judge`: the verification judge, and the verifier's send-back notes to the search model;
* :mod:`.evidence`: the query LLM that extracts a page's evidence;
* :mod:`.synthesizer`: Fathom-Synthesizer (system prompt, language line, trace framing);
* :mod:`.files`: :class:`Prompt` and reading a user's prompt file byte for byte.

Code elsewhere imports its wording from here, so a prompt change is a change in this package
(``tests/unit/protocols/test_prompts.py`` keeps it that way). The wording is part of the prompt
prefix servers cache: keep it byte-identical unless changing it on purpose.
"""

from fathom.protocols.prompts.files import SCHEMA_PLACEHOLDER, Prompt, load_prompt_file
from fathom.protocols.prompts.search import (
    CHAT_SYSTEM_PROMPT,
    DEFAULT_SEARCH_PROMPT,
    FORCE_ANSWER_NOTE,
    SEARCH_SYSTEM_PROMPT,
    search_prompt,
)
from fathom.protocols.prompts.synthesizer import (
    DEFAULT_SYNTH_PROMPT,
    LANGUAGE_PLACEHOLDER,
    SYNTH_SYSTEM_PROMPT,
    SYNTH_USER_LEAD_IN,
)

__all__ = [
    "CHAT_SYSTEM_PROMPT",
    "DEFAULT_SEARCH_PROMPT",
    "DEFAULT_SYNTH_PROMPT",
    "FORCE_ANSWER_NOTE",
    "LANGUAGE_PLACEHOLDER",
    "SCHEMA_PLACEHOLDER",
    "SEARCH_SYSTEM_PROMPT",
    "SYNTH_SYSTEM_PROMPT",
    "SYNTH_USER_LEAD_IN",
    "Prompt",
    "load_prompt_file",
    "search_prompt",
]
