import pytest

from infra.endpoint.harmony import SPECIAL_TOKENS, find_leaks


@pytest.mark.parametrize("token", SPECIAL_TOKENS)
def test_every_special_token_is_a_leak(token):
    leaks = find_leaks(f"Hello {token} world", "chat.content")
    assert [lk.fragment for lk in leaks] == [token]
    assert leaks[0].where == "chat.content"


@pytest.mark.parametrize("text,fragment", [
    ("analysisThe user asks for the weather.", "leading 'analysis'"),
    ("assistantfinalHello!", "leading 'assistantfinal'"),
    ("  commentary{\"city\": \"Paris\"}", "leading 'commentary'"),
    ("call it to=functions.get_weather now", "to=functions."),
    ("get_weather<|channel|>commentary", "<|channel|>"),
])
def test_text_forms_are_leaks(text, fragment):
    assert fragment in [lk.fragment for lk in find_leaks(text)]


@pytest.mark.parametrize("text", [
    None, "", "Hello from the tiny gpt-oss test model.", "Analysis shows it will rain.",
    "analysis of the data", "final answer: 42", "The commentary was long.", "finally", '{"city": "Paris"}',
    "Use functions carefully; to=assistant is not a recipient here",
])
def test_clean_text_has_no_leak(text):
    assert find_leaks(text) == []


def test_excerpt_is_short():
    text = "x" * 500 + "<|end|>" + "y" * 500
    (leak,) = find_leaks(text)
    assert len(leak.excerpt) <= 60 and "<|end|>" in leak.excerpt
