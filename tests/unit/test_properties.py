"""`parse_properties` reads `.properties` text exactly as `java.util.Properties.load(Reader)` does.

Table-driven: each row is the file text and the dict Java would load from it. The first rows are the
examples of the `Properties.load(Reader)` Javadoc; the edge cases (empty logical lines, comments after
continuations, the end of the input) were checked against OpenJDK 17 and 25.
"""

from __future__ import annotations

import pytest

from reconciler.core.properties import jaas_credentials, parse_properties, to_jq_vars

P = pytest.param

JAAS_TEXT = (
    "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\\n"
    '    username="alice" \\\n'
    '    password="s3cr=t:pw";\n'
)
JAAS_VALUE = (
    'org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="s3cr=t:pw";'
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # --- the Javadoc's examples ---
        P("Truth = Beauty", {"Truth": "Beauty"}, id="javadoc-spaces-around-equals"),
        P(" Truth:Beauty", {"Truth": "Beauty"}, id="javadoc-leading-space-colon"),
        P("Truth                    :Beauty", {"Truth": "Beauty"}, id="javadoc-spaces-before-colon"),
        P(
            "fruits                           apple, banana, pear, \\\n"
            "                                 cantaloupe, watermelon, \\\n"
            "                                 kiwi, mango",
            {"fruits": "apple, banana, pear, cantaloupe, watermelon, kiwi, mango"},
            id="javadoc-fruits-continuation",
        ),
        P("cheeses", {"cheeses": ""}, id="javadoc-cheeses-no-value"),
        P("\\:\\=", {":=": ""}, id="javadoc-escaped-separators-key"),
        P("k=\\z", {"k": "z"}, id="javadoc-unknown-escape-is-the-char"),
        # --- natural lines: \n, \r, \r\n; nothing else ends a line ---
        P("a=1\nb=2", {"a": "1", "b": "2"}, id="lf"),
        P("a=1\r\nb=2\r\n", {"a": "1", "b": "2"}, id="crlf"),
        P("a=1\rb=2\r", {"a": "1", "b": "2"}, id="cr"),
        P("a=1\r\n\r\n\n\rb=2", {"a": "1", "b": "2"}, id="mixed-blank-lines"),
        P("a=1\x0bb=2", {"a": "1\x0bb=2"}, id="vertical-tab-is-no-terminator"),
        P("a=1\u2028b=2\x85c", {"a": "1\u2028b=2\x85c"}, id="unicode-separators-are-no-terminators"),
        P("a=1\x1cb", {"a": "1\x1cb"}, id="file-separator-is-no-terminator"),
        # --- blank and comment lines ---
        P("", {}, id="empty-input"),
        P("   \n\t\n\f\n", {}, id="whitespace-only-lines"),
        P("# c\n! c\n   # indented\n\t! tab\n\f#ff", {}, id="comments"),
        P("#a=b\n!c=d", {}, id="comment-looking-like-pair"),
        P("a=b # not a comment", {"a": "b # not a comment"}, id="hash-inside-value"),
        P("a=#b", {"a": "#b"}, id="value-starting-with-hash"),
        P("\\#a=b\n\\!c=d", {"#a": "b", "!c": "d"}, id="escaped-comment-chars-in-key"),
        P("# comment \\\na=b", {"a": "b"}, id="comment-ending-in-backslash-does-not-continue"),
        P("! comment \\\\\\\na=b", {"a": "b"}, id="comment-ending-in-odd-backslashes"),
        P("a=b\\\n# c", {"a": "b# c"}, id="continuation-line-starting-with-hash"),
        P("a=b\\\n   ! c", {"a": "b! c"}, id="continuation-line-starting-with-bang"),
        # --- logical lines: odd trailing backslashes continue, even ones do not ---
        P("a=b\\\n  c", {"a": "bc"}, id="continuation-drops-leading-spaces"),
        P("a=b \\\n\t\f c", {"a": "b c"}, id="continuation-drops-tab-and-formfeed"),
        P("a=b\\\r\n  c\r\nd=e", {"a": "bc", "d": "e"}, id="continuation-crlf"),
        P("a=b\\\r  c\rd=e", {"a": "bc", "d": "e"}, id="continuation-cr"),
        P("a=1\\\n2\\\n3\\\n4", {"a": "1234"}, id="several-continuations"),
        P("ke\\\n  y=v", {"key": "v"}, id="continuation-inside-key"),
        P("a=b\\\\", {"a": "b\\"}, id="even-backslashes-literal"),
        P("a=b\\\\\nc=d", {"a": "b\\", "c": "d"}, id="even-backslashes-do-not-continue"),
        P("a=b\\\\\\\nc=d", {"a": "b\\c=d"}, id="three-backslashes-continue"),
        P("a=b\\\\\\\\\nc=d", {"a": "b\\\\", "c": "d"}, id="four-backslashes-do-not-continue"),
        P("a=b\\", {"a": "b"}, id="backslash-at-end-of-input-dropped"),
        P("a=b\\\\\\", {"a": "b\\"}, id="odd-backslashes-at-end-of-input"),
        P("a=b\\\n", {"a": "b"}, id="continuation-onto-end-of-input"),
        P("a=b\\\n\nc=d", {"a": "b", "c": "d"}, id="empty-continuation-line-ends-logical-line"),
        P("a=b\\\n   \nc=d", {"a": "b", "c": "d"}, id="blank-continuation-line-ends-logical-line"),
        P("a=b\\\n  \\\n  c", {"a": "bc"}, id="continuation-line-of-only-a-backslash"),
        P("\\\n\nk=v", {"k": "v"}, id="logical-line-left-empty-is-blank"),
        P("\\", {"": ""}, id="only-a-backslash-yields-empty-key"),
        P("\\\n", {"": ""}, id="only-a-continuation-then-lf-at-end-yields-empty-key"),
        P("\\\r", {"": ""}, id="only-a-continuation-then-cr-at-end-yields-empty-key"),
        P("\\\r\n", {}, id="only-a-continuation-then-crlf-at-end-yields-nothing"),
        P("\\\n ", {}, id="only-a-continuation-then-space-yields-nothing"),
        P("a=1\n\\\n", {"a": "1", "": ""}, id="stray-backslash-line-at-end"),
        P("\\\n# c\nk=v", {"k": "v"}, id="continuation-of-nothing-onto-hash-is-a-comment"),
        P("  \\\n  \\\n  ! c \\\nk=v", {"k": "v"}, id="continuations-of-nothing-onto-bang-is-a-comment"),
        P("\\ \\\n# c", {" #": "c"}, id="continuation-of-escaped-space-onto-hash-is-key"),
        P("a=b\\ \nc=d", {"a": "b ", "c": "d"}, id="backslash-space-before-eol-escapes-the-space"),
        # --- key and separator ---
        P("key value", {"key": "value"}, id="space-separator"),
        P("key\tvalue", {"key": "value"}, id="tab-separator"),
        P("key\fvalue", {"key": "value"}, id="formfeed-separator"),
        P(
            "key   value with spaces",
            {"key": "value with spaces"},
            id="space-separator-value-keeps-inner-spaces",
        ),
        P("key value = x", {"key": "value = x"}, id="space-then-equals-in-value"),
        P("key = value  ", {"key": "value  "}, id="trailing-spaces-kept"),
        P("key=value\t\f", {"key": "value\t\f"}, id="trailing-tab-formfeed-kept"),
        P("key=  ", {"key": ""}, id="only-spaces-after-separator"),
        P("key = = v", {"key": "= v"}, id="second-equals-belongs-to-value"),
        P("key==v", {"key": "=v"}, id="double-equals"),
        P("key :: v", {"key": ": v"}, id="double-colon"),
        P("key:=v", {"key": "=v"}, id="colon-then-equals"),
        P("key \t : \t v", {"key": "v"}, id="whitespace-around-colon"),
        P("a:", {"a": ""}, id="colon-no-value"),
        P("lonely   ", {"lonely": ""}, id="key-trailing-spaces-no-value"),
        P("=v", {"": "v"}, id="empty-key"),
        P(":", {"": ""}, id="only-separator"),
        P("a\\=b=c", {"a=b": "c"}, id="escaped-equals-in-key"),
        P("a\\:b:c", {"a:b": "c"}, id="escaped-colon-in-key"),
        P("a\\ b c", {"a b": "c"}, id="escaped-space-in-key"),
        P("key\\ with\\ spaces = value", {"key with spaces": "value"}, id="escaped-spaces-in-key"),
        P("a\\\\=b", {"a\\": "b"}, id="escaped-backslash-then-separator"),
        P("a\\\\\\=b=c", {"a\\=b": "c"}, id="escaped-backslash-then-escaped-equals"),
        P("k=v=w==", {"k": "v=w=="}, id="equals-in-value"),
        P("url=http://h:1/p", {"url": "http://h:1/p"}, id="colons-in-value"),
        P("path=C:\\\\dir\\\\f", {"path": "C:\\dir\\f"}, id="windows-path"),
        P('p=`id -u` $HOME "q"', {"p": '`id -u` $HOME "q"'}, id="never-shell-evaluated"),
        # --- escapes ---
        P("a=\\t\\n\\r\\f", {"a": "\t\n\r\f"}, id="control-escapes"),
        P("\\n\\t=x", {"\n\t": "x"}, id="control-escapes-in-key"),
        P("a=\\b\\a\\0\\x", {"a": "ba0x"}, id="unsupported-escapes-are-the-char"),
        P("a=\\\"q\\' \\#\\!", {"a": "\"q' #!"}, id="escaped-quotes-and-comment-chars"),
        P("a=\\ \\ x", {"a": "  x"}, id="escaped-leading-spaces-kept"),
        P("a=\\u0041\\u00e9\\u20AC", {"a": "Aé€"}, id="unicode-escapes"),
        P("a=\\u0041BC", {"a": "ABC"}, id="unicode-escape-then-hex-looking-text"),
        P("\\u003d=x", {"=": "x"}, id="unicode-equals-in-key-is-not-a-separator"),
        P("k\\u0020ey=x", {"k ey": "x"}, id="unicode-space-in-key"),
        P("a=\\uD83D\\uDE00", {"a": "\U0001f600"}, id="unicode-surrogate-pair-joined"),
        P("a=\\u00\\\n   41", {"a": "A"}, id="unicode-escape-across-continuation"),
        P("clé=välue ☃", {"clé": "välue ☃"}, id="literal-unicode"),
        # --- duplicates: the last one wins ---
        P("a=1\nb=2\na=3", {"a": "3", "b": "2"}, id="duplicate-last-wins"),
        P("a=1\na", {"a": ""}, id="duplicate-with-no-value"),
        # --- Confluent / Kafka client configs ---
        P(JAAS_TEXT, {"sasl.jaas.config": JAAS_VALUE}, id="jaas-continued"),
        P(JAAS_TEXT.replace("\n", "\r\n"), {"sasl.jaas.config": JAAS_VALUE}, id="jaas-continued-crlf"),
        P(
            "# Confluent Cloud\nbootstrap.servers=pkc-1.eu-west-1.aws.confluent.cloud:9092\n"
            "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n"
            "schema.registry.url=https://psrc-1.aws.confluent.cloud\n"
            "basic.auth.credentials.source=USER_INFO\nbasic.auth.user.info=SRKEY:sr/secret+x==\n",
            {
                "bootstrap.servers": "pkc-1.eu-west-1.aws.confluent.cloud:9092",
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "PLAIN",
                "schema.registry.url": "https://psrc-1.aws.confluent.cloud",
                "basic.auth.credentials.source": "USER_INFO",
                "basic.auth.user.info": "SRKEY:sr/secret+x==",
            },
            id="confluent-cloud-client-config",
        ),
    ],
)
def test_parse_properties_like_java(text: str, expected: dict[str, str]) -> None:
    assert parse_properties(text) == expected


def test_duplicate_key_keeps_its_first_position() -> None:
    assert list(parse_properties("a=1\nb=2\na=3")) == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        P("a=\\u", 1, id="no-digits"),
        P("a=\\u12", 1, id="too-few-digits-at-end"),
        P("a=\\u12G4", 1, id="non-hex-digit"),
        P("a=\\uu0041", 1, id="double-u"),
        P("a=\\u_041", 1, id="underscore-is-no-hex-digit"),
        P("a=\\u+041", 1, id="plus-is-no-hex-digit"),
        P("a=\\u 041", 1, id="space-is-no-hex-digit"),
        P("\\uXYZW=v", 1, id="in-key"),
        P("x=1\n\n# c\nk=\\u00", 4, id="line-number-counts-blank-and-comment-lines"),
        P("x=1\r\ny=2\\\r\n  ok \\u12", 3, id="line-of-the-escape-inside-a-continuation"),
        P("x=1\ny=\\u12\\\n  zz", 2, id="escape-before-a-continuation"),
    ],
)
def test_malformed_unicode_escape_raises(text: str, line: int) -> None:
    with pytest.raises(ValueError, match=rf"line {line}: malformed \\uxxxx encoding"):
        parse_properties(text)


def test_malformed_unicode_message_does_not_echo_the_value() -> None:
    with pytest.raises(ValueError) as info:
        parse_properties("password=hunter2\\u12")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        P(JAAS_TEXT, {"KAFKA_API_KEY": "alice", "KAFKA_API_SECRET": "s3cr=t:pw"}, id="continued"),
        P(
            JAAS_TEXT.replace("\n", "\r\n"),
            {"KAFKA_API_KEY": "alice", "KAFKA_API_SECRET": "s3cr=t:pw"},
            id="crlf",
        ),
        P(
            'sasl.jaas.config = org.apache.kafka.common.security.plain.PlainLoginModule required username = "K1"'
            ' password = "p w#!";   ',
            {"KAFKA_API_KEY": "K1", "KAFKA_API_SECRET": "p w#!"},
            id="one-line-spaces-around-equals",
        ),
        P(
            "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\\n"
            '\tusername="\\u0041PIKEY" \\\n\tpassword="a\\\\b";',
            {"KAFKA_API_KEY": "APIKEY", "KAFKA_API_SECRET": "a\\b"},
            id="escapes-decoded-before-jaas",
        ),
        P("sasl.mechanism=PLAIN", {}, id="no-jaas-config"),
    ],
)
def test_jaas_credentials_from_properties(text: str, expected: dict[str, str]) -> None:
    variables, warnings = to_jq_vars([("f", text)])
    assert warnings == []
    assert jaas_credentials(variables) == expected
