"""What the query LLM reads when it extracts a page's evidence for the search model's goal.

``EVIDENCE_USER_PROMPT`` has two slots, ``{webpage_content}`` and ``{goal}``, filled in one pass
by :class:`fathom.tools.evidence.EvidenceExtractor` (braces in a page are never expanded). The
extractor is handed these texts where it is built (``fathom.app.services``): the tools layer does
not import protocols.
"""

from __future__ import annotations

EVIDENCE_SYSTEM_PROMPT = (
    "You read web pages for a research agent and report what a page says about the agent's goal. "
    "Be exact and complete: keep every relevant fact, number, date and name, quote the page word "
    "for word with enough surrounding context to be understood on its own, and never add anything "
    "the page does not say. Stay focused on what the goal asks for."
)
EVIDENCE_USER_PROMPT = (
    "Below are the contents of a web page and a goal. Report what the page offers for the goal.\n\n"
    "## Page\n{webpage_content}\n\n"
    "## Goal\n{goal}\n\n"
    "## Instructions\n"
    "1. Rationale: in a few sentences, say which parts of the page bear on the goal and why "
    "(or that none do).\n"
    "2. Evidence: copy the relevant passages verbatim, one per line, each line starting with \"- \". "
    "Include the surrounding words needed to understand each quote.\n"
    "3. Summary: a short, well-organised summary of what the page establishes about the goal.\n\n"
    "## Reply format\n"
    "Write exactly three sections, each starting with its label on its own line, and nothing else:\n"
    "Rationale:\n...\n\nEvidence:\n- ...\n\nSummary:\n...\n"
)
