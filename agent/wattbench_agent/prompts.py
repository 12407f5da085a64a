"""Prompts: synthetic text and the requests of a point, in send order."""

import random
from dataclasses import dataclass
from typing import List

from .job import WorkloadConfig


# Common short English words: most tokenizers make one token of each (with its leading space), and the
# simulated server counts whitespace-separated words, so N words is about N tokens everywhere.
WORDS = (
    "the of and to in is it you that he was for on are with as his they be at one have this from or had by "
    "but some what there we can out other were all your when up use word how said an each she which do their "
    "time if will way about many then them would write like so these her long make thing see him two has look "
    "more day could go come did my sound no most number who over know water than call first people may down "
    "side been now find any new work part take get place made live where after back little only round man year"
).split()


def synthetic_text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(max(1, words)))


@dataclass
class RequestSpec:
    prompt: str
    prompt_tokens: int  # the intended length; replaced by the server's count when it reports usage
    max_tokens: int


def build_request_specs(workload: WorkloadConfig, count: int) -> List[RequestSpec]:
    """The point's requests in send order: warm-up requests first, then the measured ones."""
    dataset = workload.dataset
    rng = random.Random(workload.seed)
    specs = []
    for n in range(count):
        if dataset.kind == "synthetic":
            words = dataset.input_tokens.draw(rng)
            prompt = synthetic_text(rng, words)
        else:
            prompt = dataset.prompts[n % len(dataset.prompts)]  # a short file is reused cyclically
            words = len(prompt.split())
        wanted = dataset.output_tokens.draw(rng) if dataset.output_tokens else workload.max_tokens
        specs.append(RequestSpec(prompt, words, min(wanted, workload.max_tokens)))
    return specs
