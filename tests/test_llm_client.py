"""The LLM client: failover, schema validation and accounting."""

import pytest

from agents.llm import LLMClient, LLMFormatError, LLMUnavailable
from agents.models import AgentCall
from agents.schemas import MonitorVerdict
from gryphgen_site.stack import free_port

pytestmark = pytest.mark.django_db

MESSAGES = [{"role": "user", "content": "hello"}]


def test_fails_over_to_the_backup_endpoint(llm):
    dead = f"http://127.0.0.1:{free_port()}"
    reply = LLMClient(endpoints=[dead, llm.url]).chat("generator", MESSAGES, purpose="generate")
    assert reply.text.startswith("```python")
    first, second = AgentCall.objects.order_by("id")
    assert first.endpoint == dead and "APIConnectionError" in first.error
    assert second.endpoint == llm.url and second.error == "" and second.prompt_tokens > 0
    sent = llm.requests[0]["body"]
    assert sent["max_tokens"] == 768 and sent["temperature"] == 0.2 and sent["seed"] == 42


def test_all_endpoints_down_raises_unavailable():
    with pytest.raises(LLMUnavailable, match="no endpoint of the small model answered"):
        LLMClient(endpoints=[f"http://127.0.0.1:{free_port()}"]).chat("generator", MESSAGES)


@pytest.mark.parametrize(
    "reply, message",
    [
        ("{oops", "not valid JSON"),
        ('{"aligned": "yes", "evidence": "x"}', "breaks the schema at aligned"),
        ('{"evidence": "x"}', "breaks the schema at aligned: Field required"),
    ],
)
def test_schema_violations_are_clear_errors(llm, reply, message):
    llm.script("monitor_verdict", reply)
    with pytest.raises(LLMFormatError, match=message):
        LLMClient(endpoints=[llm.url]).chat("monitor", MESSAGES, purpose="monitor_verdict", schema=MonitorVerdict)
    call = AgentCall.objects.get()
    assert call.response == reply and message.split(" ")[0] in call.error
    sent = llm.requests[0]["body"]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"] == MonitorVerdict.json_schema()
