"""Request bodies, in the shapes OpenAI's and text-embeddings-inference's clients send.

Strict types (no "5" for 5, no 1 for true): a wrong type is a 422 that names the field, not a silent conversion.
Unknown fields are ignored, as the APIs we mirror do; OpenAI options we do not implement are accepted only at
their neutral value (checked by the endpoints, a 400 naming the option)."""
from __future__ import annotations

from typing import Dict, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ChatCompletionRequest", "ChatMessage", "CompletionRequest", "EmbeddingRequest", "StreamOptions",
           "TeiEmbedRequest"]

TextOrTokens = Union[str, List[str], List[int], List[List[int]]]


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class EmbeddingRequest(_Request):
    """POST /v1/embeddings. `truncate` is ours: inputs past the model's max length are cut instead of refused."""

    input: TextOrTokens
    model: Optional[str] = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Optional[int] = Field(default=None, ge=1)
    user: Optional[str] = None
    truncate: bool = False


class TeiEmbedRequest(_Request):
    """POST /embed (text-embeddings-inference)."""

    inputs: Union[str, List[str]]
    normalize: bool = True
    truncate: bool = False
    truncation_direction: Literal["right", "Right", "left", "Left"] = "right"
    prompt_name: Optional[str] = None


class StreamOptions(_Request):
    include_usage: bool = False


class _GenerationRequest(_Request):
    """The sampling, streaming and stop fields /v1/completions and /v1/chat/completions share."""

    temperature: Optional[float] = Field(default=1.0, ge=0.0, le=2.0)
    top_p: Optional[float] = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1)
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    stop: Optional[Union[str, List[str]]] = None
    seed: Optional[int] = Field(default=None, ge=0)
    user: Optional[str] = None


class CompletionRequest(_GenerationRequest):
    """POST /v1/completions."""

    prompt: TextOrTokens
    model: Optional[str] = None
    max_tokens: Optional[int] = Field(default=16, ge=0)
    # accepted at their neutral value only
    echo: bool = False
    logprobs: Optional[int] = None
    best_of: Optional[int] = None
    presence_penalty: Optional[float] = 0.0
    frequency_penalty: Optional[float] = 0.0
    logit_bias: Optional[Dict[str, float]] = None
    suffix: Optional[str] = None


class ChatMessage(BaseModel):
    """One message of a chat; extra fields (name, ...) are passed to the chat template as they are."""

    model_config = ConfigDict(strict=True, extra="allow")
    role: str
    content: str


class ChatCompletionRequest(_GenerationRequest):
    """POST /v1/chat/completions."""

    messages: List[ChatMessage] = Field(min_length=1)
    model: Optional[str] = None
    max_tokens: Optional[int] = Field(default=None, ge=0)
    max_completion_tokens: Optional[int] = Field(default=None, ge=0)
    # accepted at their neutral value only
    logprobs: Optional[bool] = None
    presence_penalty: Optional[float] = 0.0
    frequency_penalty: Optional[float] = 0.0
    logit_bias: Optional[Dict[str, float]] = None
    tools: Optional[List[Dict]] = None
