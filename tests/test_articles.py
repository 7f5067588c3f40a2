"""The seed parser: every irregularity of real files, and every way a bad file is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.articles import Article, SeedError, is_http_url, parse_seed, printable

# The tests' own copy of the shipped seeds: the repository's seeds/ may gain more files.
SEEDS = Path(__file__).resolve().parent / "data" / "seeds"

MINIMAL = """---
title: "A title"
excerpt: "An excerpt."
publishedDateTime: 2020-06-11T21:57:00Z
webUrl: "https://example.com/a"
provider:
  name: Example
  domain: example.com
---
"""


def seed(text: str) -> bytes:
    return text.encode("utf-8")


def parse(text: str | bytes, name: str = "x.md") -> Article:
    return parse_seed(text if isinstance(text, bytes) else seed(text), name)


def error_of(text: str | bytes, name: str = "bad.md") -> str:
    with pytest.raises(SeedError) as caught:
        parse(text, name)
    return str(caught.value)


# --- the shipped seeds ----------------------------------------------------------------------


def test_every_shipped_seed_parses_with_its_related_links() -> None:
    articles = [parse(p.read_bytes(), p.name) for p in sorted(SEEDS.glob("*.md"))]
    assert len(articles) == 5
    assert all(
        "facial recognition" in a.title.lower()
        or "Rekognition" in a.excerpt
        or "facial" in a.excerpt.lower()
        for a in articles
    )
    qz = next(a for a in articles if a.provider == "Quartz")
    assert qz.provider_domain == "qz.com"
    assert qz.provider_icon and qz.provider_icon.endswith("qz.com-50x50.jpg")
    assert qz.topics == ("Computer Vision", "AI")
    assert qz.quality == 87.0
    assert qz.image_url and qz.image_url.startswith("https://cms.qz.com/")
    assert qz.related[0].title == "A Bill in Congress Would Limit Uses of Facial Recognition"
    assert qz.related[0].provider == "Wired"
    assert qz.related[0].published == datetime(2020, 6, 12, 20, 52, tzinfo=UTC)
    assert qz.related[0].image_url is not None


# --- irregularities seen in real files ------------------------------------------------------


def test_video_without_web_url_uses_original_url() -> None:
    text = MINIMAL.replace(
        'webUrl: "https://example.com/a"',
        'originalUrl: "https://youtube.com/watch?v=abc"\ntype: video',
    )
    article = parse(text)
    assert article.url == "https://youtube.com/watch?v=abc"
    assert article.kind == "video"


def test_web_url_wins_over_original_url() -> None:
    text = MINIMAL.replace("---\n", '---\noriginalUrl: "https://other.example/x"\n', 1)
    assert parse(text).url == "https://example.com/a"


@pytest.mark.parametrize(
    "raw",
    [
        "2020-06-11T21:57:00Z",  # YAML makes a datetime of this
        '"2020-06-11T21:57:00Z"',  # a string
        '"2020-06-11T23:57:00+02:00"',  # another zone
        "2020-06-11 21:57:00",  # naive: taken as UTC
    ],
)
def test_dates_become_aware_utc_whatever_yaml_gave(raw: str) -> None:
    article = parse(MINIMAL.replace("2020-06-11T21:57:00Z", raw))
    assert article.published == datetime(2020, 6, 11, 21, 57, tzinfo=UTC)
    assert article.published.utcoffset() is not None


def test_crlf_line_endings_are_tolerated() -> None:
    article = parse(seed(MINIMAL.replace("\n", "\r\n")))
    assert article.title == "A title"
    assert article.provider == "Example"


def test_none_topics_are_dropped() -> None:
    text = MINIMAL.replace("---\n", "---\ntopics:\n  - AI\n  -\n  - Policy\n", 1)
    assert parse(text).topics == ("AI", "Policy")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('""', ""),
        ('"Line one\\nline two\\n"', "Line one\nline two"),
        ('"trailing newline\\n\\n"', "trailing newline"),
    ],
)
def test_excerpt_shapes(raw: str, expected: str) -> None:
    assert parse(MINIMAL.replace('"An excerpt."', raw)).excerpt == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"  Spaced out  "', "Spaced out"),
        ('"Ozzy&#39;s &amp; Sharon&#8217;s"', "Ozzy's & Sharon\u2019s"),
        ('"Emoji 🎮 and “curly quotes”"', "Emoji 🎮 and “curly quotes”"),
        ('"' + "long " * 36 + '"', ("long " * 36).strip()),
    ],
)
def test_titles_are_stripped_and_unescaped(raw: str, expected: str) -> None:
    assert parse(MINIMAL.replace('"A title"', raw)).title == expected


def test_provider_name_in_arabic_script() -> None:
    article = parse(MINIMAL.replace("name: Example", "name: الجزيرة"))
    assert article.provider == "الجزيرة"


def test_no_images_anywhere_is_fine() -> None:
    text = MINIMAL + ""
    article = parse(text)
    assert article.image_url is None
    assert article.provider_icon is None


def test_related_items_without_images_keep_their_fields() -> None:
    text = MINIMAL.replace(
        "---\n",
        "---\nrelated:\n"
        '  - title: "Other story"\n'
        '    webUrl: "https://other.example/story"\n'
        "    publishedDateTime: 2020-06-12T20:52:00Z\n"
        "    provider:\n      name: Wired\n      domain: wired.com\n",
        1,
    )
    (link,) = parse(text).related
    assert (link.title, link.url, link.provider, link.provider_domain) == (
        "Other story",
        "https://other.example/story",
        "Wired",
        "wired.com",
    )
    assert link.image_url is None


def test_the_date_field_is_trusted_over_the_file_name() -> None:
    article = parse(MINIMAL, "2020-06-12-a-title.md")
    assert article.published.date().isoformat() == "2020-06-11"


def test_a_c1_control_character_is_reported_with_file_and_reason() -> None:
    raw = MINIMAL.replace("An excerpt.", "Bad \u0097 char").encode("utf-8")
    message = error_of(raw, "2021-01-01-control.md")
    assert message.startswith("2021-01-01-control.md:3: YAML error:")
    assert message.endswith("control characters are not allowed (U+0097)")


# --- refusals: one line naming the file, the line where YAML gives one, and the reason ------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            b"title: no front matter\n",
            "bad.md:1: no YAML front matter: the file must start with a '---' line",
        ),
        (
            b"---\ntitle: never closed\n",
            "bad.md: front matter is never closed: no '---' line after the first",
        ),
        (
            b"---\ntitle: ok\nexcerpt: [unclosed\n---\n",
            "bad.md:4: YAML error: did not find expected ',' or ']'",
        ),
        (b"---\n- a\n- list\n---\n", "bad.md: front matter is a list, not a mapping of keys"),
        (b"---\njust a scalar\n---\n", "bad.md: front matter is a string, not a mapping of keys"),
        (b"---\n---\n", "bad.md: front matter is empty, not a mapping of keys"),
        (b"\x00\x01\x02binary", "bad.md: binary content (NUL bytes); a seed file is UTF-8 text"),
        (b"---\ntitle: caf\xe9\n---\n", "bad.md:2: invalid UTF-8 at byte 14"),
        ("---\ntitle: x\n---\n".encode("utf-16"), "bad.md: file is UTF-16; save it as UTF-8"),
    ],
)
def test_malformed_files_are_refused_with_one_clear_line(raw: bytes, expected: str) -> None:
    message = error_of(raw)
    assert message == expected
    assert "\n" not in message


def test_python_tags_are_refused_and_never_constructed(tmp_path: Path) -> None:
    marker = tmp_path / "constructed"
    raw = MINIMAL.replace(
        'title: "A title"',
        f"title: !!python/object/apply:os.system ['touch {marker}']",
    )
    message = error_of(raw)
    assert message.startswith("bad.md:2: YAML error: could not determine a constructor")
    assert not marker.exists()


def test_an_alias_bomb_is_refused() -> None:
    lines = ["---", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [" + ",".join([f"*{previous}"] * 9) + "]")
    lines += ['title: "bomb"', "---", ""]
    message = error_of("\n".join(lines))
    assert "YAML aliases; refusing a possible alias bomb" in message
    assert message.startswith("bad.md:")


def test_a_utf8_bom_is_accepted() -> None:
    assert parse(b"\xef\xbb\xbf" + seed(MINIMAL)).title == "A title"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('title: "A title"\n', ""), "bad.md: missing key 'title'"),
        (('"A title"', '"   "'), "bad.md: 'title' is empty"),
        (('"A title"', "[1, 2]"), "bad.md: 'title' must be a string, not list"),
        (('"A title"', "1984"), "bad.md: 'title' must be a string, not int"),
        (
            ("2020-06-11T21:57:00Z", "next tuesday"),
            "bad.md: 'publishedDateTime' is not a date: 'next tuesday'",
        ),
        (
            ("publishedDateTime: 2020-06-11T21:57:00Z\n", ""),
            "bad.md: missing key 'publishedDateTime'",
        ),
        (
            ('webUrl: "https://example.com/a"\n', ""),
            "bad.md: no URL: neither 'webUrl' nor 'originalUrl' is set",
        ),
        (
            ("https://example.com/a", "javascript:alert(1)"),
            "bad.md: 'webUrl' is not an http(s) URL (scheme 'javascript'): 'javascript:alert(1)'",
        ),
        (
            ("https://example.com/a", "data:text/html,hi"),
            "bad.md: 'webUrl' is not an http(s) URL (scheme 'data'): 'data:text/html,hi'",
        ),
    ],
)
def test_bad_fields_are_refused(change: tuple[str, str], expected: str) -> None:
    assert error_of(MINIMAL.replace(*change)) == expected


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        # YAML resolves these as timestamps, then its constructor fails on them
        ("2020-02-30T10:00:00Z", "bad.md: YAML error: day is out of range for month"),
        ("2020-06-11T25:00:00Z", "bad.md: YAML error: hour must be in 0..23"),
        # valid ISO, but before year 1 in UTC, or outside any sensible news date: the message
        # says which dates are accepted
        (
            '"0001-01-01T00:00:00+01:00"',
            "bad.md: 'publishedDateTime' is '0001-01-01T00:00:00+01:00', "
            "outside the accepted years 1900 to 2200",
        ),
        (
            '"0001-01-01T00:00:00Z"',
            "bad.md: 'publishedDateTime' is '0001-01-01T00:00:00+00:00', "
            "outside the accepted years 1900 to 2200",
        ),
    ],
)
def test_impossible_dates_are_refused_not_raised(date: str, expected: str) -> None:
    assert error_of(MINIMAL.replace("2020-06-11T21:57:00Z", date)) == expected


@pytest.mark.parametrize("quality", ["1" + "0" * 400, ".nan", ".inf", "-.inf"])
def test_a_quality_no_float_can_hold_is_dropped_with_a_warning(quality: str) -> None:
    article = parse(MINIMAL.replace("---\n", f"---\nquality: {quality}\n", 1))
    assert article.quality is None
    assert any("'quality' must be a number" in w for w in article.warnings)


def test_a_topic_that_cleans_to_nothing_is_dropped() -> None:
    text = MINIMAL.replace("---\n", "---\ntopics:\n  - '&nbsp;'\n  - ' '\n  - AI\n", 1)
    assert parse(text).topics == ("AI",)


@pytest.mark.parametrize(
    ("extra", "warning"),
    [
        ("related: not-a-list\n", "x.md: 'related' must be a list, not string; ignored"),
        ("related:\n  - title: no url\n", "x.md: related item 1 has no http(s) URL; dropped"),
        (
            "related:\n  - title: bad\n    webUrl: 'javascript:x'\n",
            "x.md: related item 1 has no http(s) URL; dropped",
        ),
        ("topics: AI\n", "x.md: 'topics' must be a list, not string; ignored"),
        ("quality: high\n", "x.md: 'quality' must be a number, not 'high'; ignored"),
    ],
)
def test_bad_optional_fields_are_dropped_with_a_warning(extra: str, warning: str) -> None:
    article = parse(MINIMAL.replace("---\n", "---\n" + extra, 1))
    assert article.title == "A title"
    assert warning in article.warnings


def test_good_related_items_survive_beside_bad_ones() -> None:
    text = MINIMAL.replace(
        "---\n",
        "---\nrelated:\n  - title: no url\n"
        "  - title: good\n    webUrl: https://good.example/\n  - just a string\n",
        1,
    )
    article = parse(text)
    assert [link.title for link in article.related] == ["good"]
    assert len(article.warnings) == 2


# --- property: arbitrary input gives an Article or a SeedError, nothing else ----------------

yaml_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.datetimes(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
article_keys = st.sampled_from(
    [
        "title",
        "excerpt",
        "publishedDateTime",
        "webUrl",
        "originalUrl",
        "provider",
        "topics",
        "images",
        "related",
        "quality",
        "type",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: ("---\n" + t).encode()))
def test_arbitrary_bytes_give_an_article_or_a_seed_error(raw: bytes) -> None:
    try:
        result = parse_seed(raw, "fuzz.md")
    except SeedError as exc:
        assert str(exc).startswith("fuzz.md")
    else:
        assert isinstance(result, Article)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(article_keys, yaml_values, max_size=8))
def test_arbitrary_yaml_documents_give_an_article_or_a_seed_error(doc: dict) -> None:
    raw = ("---\n" + yaml.safe_dump(doc, allow_unicode=True) + "---\n").encode("utf-8")
    try:
        result = parse_seed(raw, "fuzz.md")
    except SeedError as exc:
        assert str(exc).startswith("fuzz.md")
    else:
        assert isinstance(result, Article)
        assert result.url.startswith(("http://", "https://"))
        assert result.published.tzinfo is not None


# --- rejections say why; what a browser opens is accepted -------------------------------------


@pytest.mark.parametrize(
    ("date", "shown"),
    [
        ("9999-12-31", "9999-12-31T00:00:00"),  # YAML gives a date
        ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59+00:00"),  # a datetime
        ("9999-12-31T23:59:59-05:00", "9999-12-31T23:59:59-05:00"),  # overflows in UTC
        ("1850-01-01", "1850-01-01T00:00:00"),
        ("2201-01-01T00:00:00Z", "2201-01-01T00:00:00+00:00"),
        ("1899-12-31T23:59:59Z", "1899-12-31T23:59:59+00:00"),
        ('"9999-12-31T00:00:00Z"', "9999-12-31T00:00:00+00:00"),  # a string
    ],
)
def test_a_date_out_of_range_is_refused_with_the_accepted_range(date: str, shown: str) -> None:
    assert error_of(MINIMAL.replace("2020-06-11T21:57:00Z", date)) == (
        f"bad.md: 'publishedDateTime' is '{shown}', outside the accepted years 1900 to 2200"
    )


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("1900-01-01T00:00:00Z", datetime(1900, 1, 1, tzinfo=UTC)),
        ("2200-12-31T23:59:59Z", datetime(2200, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("1900-01-01T00:30:00-01:00", datetime(1900, 1, 1, 1, 30, tzinfo=UTC)),
    ],
)
def test_the_ends_of_the_accepted_range_load(date: str, expected: datetime) -> None:
    assert parse(MINIMAL.replace("2020-06-11T21:57:00Z", date)).published == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # 5 files of a real corpus: a space in the path, which a browser sends as %20
        (
            "https://apnews.com/Business Wire/5054a1b2c3",
            "https://apnews.com/Business%20Wire/5054a1b2c3",
        ),
        (
            "https://example.com/a b?q=x y&n='1'#top part",
            ("https://example.com/a%20b?q=x%20y&n=%271%27#top%20part"),
        ),
        (
            'https://example.com/"quoted"/<b>/{x}`',
            ("https://example.com/%22quoted%22/%3Cb%3E/%7Bx%7D%60"),
        ),
        ("https://example.com/café/naïve", "https://example.com/caf%C3%A9/na%C3%AFve"),
        ("https://münchen.example/straße", "https://xn--mnchen-3ya.example/stra%C3%9Fe"),
        (
            "https://user:two words@example.com:8080/p",
            ("https://user:two%20words@example.com:8080/p"),
        ),
        # already what a browser sends: kept exactly, so identities never shift
        ("HTTPS://Example.COM/a%20b?x=1&y=%zz#", "HTTPS://Example.COM/a%20b?x=1&y=%zz#"),
        ("https://example.com/a|b^c[d]?", "https://example.com/a|b^c[d]?"),
        ("https://[2001:db8::1]:443/x", "https://[2001:db8::1]:443/x"),
        ("  https://example.com/padded  ", "https://example.com/padded"),
    ],
)
def test_a_url_a_browser_opens_is_accepted_as_the_browser_sends_it(url: str, expected: str) -> None:
    article = parse(MINIMAL.replace('"https://example.com/a"', json.dumps(url)))
    assert article.url == expected
    assert is_http_url(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("data:text/html,hi", "scheme 'data'"),
        ("ftp://example.com/a", "scheme 'ftp'"),
        ("//example.com/a", "no scheme"),
        ("https:///a", "no host"),
        ("https://", "no host"),
        ("https:example.com", "no host"),
        ("https://user@:80/a", "no host"),
        ("https://exa mple.com/a", "' ' in the host"),
        ("https://exa<mple.com/a", "'<' in the host"),
        ("https://example.com:99999/a", "port '99999'"),
        ("https://example.com:http/a", "port 'http'"),
        ("https://example.com/a\\u0007b", "a control character"),
        ("https://example.com/a\\nb", "a control character"),
        ("https://example.com/a\\u0085b", "a control character"),
        ("https://[::1/a", "Invalid IPv6 URL"),
    ],
)
def test_a_url_no_browser_opens_is_refused_with_the_reason(url: str, why: str) -> None:
    # JSON escapes are YAML double-quoted escapes: the control characters reach the parser.
    text = MINIMAL.replace('"https://example.com/a"', '"' + url.replace('"', '\\"') + '"')
    message = error_of(text)
    assert message.startswith(f"bad.md: 'webUrl' is not an http(s) URL ({why}): ")
    assert "\n" not in message
    assert not is_http_url(url.encode().decode("unicode_escape"))


def test_related_links_and_images_are_encoded_like_the_article_url() -> None:
    text = MINIMAL.replace(
        "---\n",
        "---\nimages:\n  - url: 'https://img.example/a b.jpg'\n"
        "related:\n  - title: Other\n    webUrl: 'https://example.org/x y'\n"
        "  - title: Broken\n    webUrl: 'https://exa mple.org/'\n",
        1,
    )
    article = parse(text)
    assert article.image_url == "https://img.example/a%20b.jpg"
    assert [link.url for link in article.related] == ["https://example.org/x%20y"]
    assert any("related item 2 has no http(s) URL" in w for w in article.warnings)


@pytest.mark.parametrize(
    "name",
    ["evil\nname.md", "evil\rname.md", "a\x1b[31mred.md", "line\u2028sep.md", "tab\tand\x85.md"],
)
def test_a_file_name_with_control_characters_stays_on_one_line(name: str) -> None:
    # A name holding a newline would split the report line and could forge another one.
    message = error_of(MINIMAL.replace("title", "titel", 1), name=f"/seeds/{name}")
    assert message.isprintable()
    assert message == f"/seeds/{printable(name)}: missing key 'title'"
    assert printable(name) == repr(name)[1:-1]
    article = parse(MINIMAL.replace("---\n", "---\ntopics: 7\n", 1), name)
    assert all(w.isprintable() for w in article.warnings)
    assert article.warnings[0].startswith(repr(name)[1:-1] + ": 'topics' must be a list")
