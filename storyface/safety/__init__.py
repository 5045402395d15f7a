"""Content safety: the policy every prompt passes before rendering. Nothing heavy at import time."""

from .policy import ENV_VAR, MODES, ContentPolicy, ContentPolicyError, Finding, WordList, check_prompt

__all__ = ["ENV_VAR", "MODES", "ContentPolicy", "ContentPolicyError", "Finding", "WordList", "check_prompt"]
