"""Prompts for causal LMs: classification datasets as instructions, and rows through the chat template.

A classification example becomes a user turn "<instruction>\\n\\n<text>" (the instruction names the
label words, e.g. "Answer with one word: negative, neutral or positive.") and the answer is the
label's word; an instruction row (`instruction`, `input`, `output`) becomes "<instruction>\\n\\n<input>"
with `output` as the answer. The turn goes through the tokenizer's chat template with the
generation prompt (SmolLM2: its default system turn, then `<|im_start|>user ... <|im_end|>
<|im_start|>assistant\\n`); a tokenizer without a chat template gets the Alpaca layout
"### Instruction:\\n...\\n\\n### Response:\\n". The answer's tokens follow, then the end-of-turn
(eos) token.

Length: a row (prompt and answer) is at most `max_length` tokens. Only the truncatable part is cut
(the text of a classification example, the `input` of an instruction row, or the instruction
when the row has no input), from its end; the template, the instruction and the answer are never
cut. An example whose template, instruction and answer alone exceed `max_length` is left out.
"""
from __future__ import annotations

from dataclasses import dataclass

PLACEHOLDER = "\ue000"  # a private-use character: marks where the truncatable text goes
PLAIN_TEMPLATE = "### Instruction:\n{fixed}\n\n### Input:\n{text}\n\n### Response:\n"
PLAIN_TEMPLATE_NO_INPUT = "### Instruction:\n{text}\n\n### Response:\n"


@dataclass(frozen=True)
class ClassPrompt:
    instruction: str
    label_words: tuple[str, ...]   # the answer for each label index


# dataset -> (what to classify, label words in label order; None = the label names)
_LEADS = {
    "tweet_sentiment": ("Classify the sentiment of the tweet.", None),
    "bbc_news": ("Classify the topic of the news article.", None),
    "sst2": ("Classify the sentiment of the movie review.", None),
    "qnli": ("Does the sentence answer the question?", ("yes", "no")),
}
_PAIR_FORMAT = {"qnli": "Question: {0}\nSentence: {1}"}


def _join_or(words) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def class_prompt(dataset: str, label_names: list[str]) -> ClassPrompt:
    """The instruction and label words of a classification dataset (csv: the label names as words)."""
    key = dataset[3:] if dataset.startswith("hf:") else dataset
    lead, words = _LEADS.get(key, ("Classify the text.", None))
    words = tuple(words or (n.replace("_", " ") for n in label_names))
    return ClassPrompt(f"{lead} Answer with one word: {_join_or(words)}.", words)


def example_text(dataset: str, text) -> str:
    """The text of a classification example (a sentence pair on two lines)."""
    if isinstance(text, (tuple, list)):
        key = dataset[3:] if dataset.startswith("hf:") else dataset
        return _PAIR_FORMAT.get(key, "{0}\n{1}").format(*text)
    return str(text)


def _chat(tokenizer, fixed: str) -> str:
    user = [{"role": "user", "content": PLACEHOLDER}]
    if fixed:
        try:
            return tokenizer.apply_chat_template([{"role": "system", "content": fixed}] + user, tokenize=False,
                                                 add_generation_prompt=True)
        except Exception:  # noqa: BLE001  (a template without a system role raises its own error)
            user = [{"role": "user", "content": f"{fixed}\n\n{PLACEHOLDER}"}]
    return tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)


def template_parts(tokenizer, fixed: str) -> tuple[str, str]:
    """The prompt's text before and after the truncatable part, for the fixed instruction `fixed`."""
    if getattr(tokenizer, "chat_template", None):
        text = _chat(tokenizer, fixed)
    elif fixed:
        text = PLAIN_TEMPLATE.format(fixed=fixed, text=PLACEHOLDER)
    else:
        text = PLAIN_TEMPLATE_NO_INPUT.format(text=PLACEHOLDER)
    before, after = text.split(PLACEHOLDER)
    return before, after


def _ids(tokenizer, texts: list[str]) -> list[list[int]]:
    if not texts:
        return []
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def build_prompts(tokenizer, fixed: list[str], texts: list[str], answer_tokens: list[int],
                  max_length: int) -> list[list[int] | None]:
    """Token ids of each row's prompt, its text cut so that prompt + `answer_tokens[i]` <= max_length;
    None for a row whose template, instruction and answer alone do not fit."""
    parts = {f: template_parts(tokenizer, f) for f in dict.fromkeys(fixed)}
    keys = list(parts)
    heads = dict(zip(keys, _ids(tokenizer, [parts[k][0] for k in keys])))
    tails = dict(zip(keys, _ids(tokenizer, [parts[k][1] for k in keys])))
    out = []
    for f, text_ids, n_answer in zip(fixed, _ids(tokenizer, list(texts)), answer_tokens):
        budget = max_length - len(heads[f]) - len(tails[f]) - int(n_answer)
        out.append(None if budget < 0 else heads[f] + text_ids[:budget] + tails[f])
    return out


def answer_ids(tokenizer, answers: list[str]) -> list[list[int]]:
    """Each answer's tokens followed by the end-of-turn (eos) token, so that generation learns to stop."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    return [ids + eos for ids in _ids(tokenizer, list(answers))]


def word_ids(tokenizer, words) -> list[list[int]]:
    """The tokens of each label word alone (what likelihood scoring sums over)."""
    return _ids(tokenizer, list(words))
