"""Reading pages as a person does: visible text, flash messages, elements by attribute."""

import html
import re
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def _squeeze(value: str) -> str:
    """Collapse HTML white space (not the no-break spaces that group digits) as a browser shows it."""
    return re.sub(r"[ \t\n\r\f]+", " ", value).strip()


class Element:
    def __init__(self, tag: str, attrs: dict, parent=None):
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    @property
    def text(self) -> str:
        parts = []
        for child in self.children:
            parts.append(child if isinstance(child, str) else child.text)
        return _squeeze(" ".join(parts))

    def iter(self):
        for child in self.children:
            if isinstance(child, Element):
                yield child
                yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs) -> list["Element"]:
        found = []
        for element in self.iter():
            if tag and element.tag != tag:
                continue
            wanted = {key.rstrip("_").replace("_", "-"): value for key, value in attrs.items()}
            if all(_matches(element, key, value) for key, value in wanted.items()):
                found.append(element)
        return found

    def find(self, tag: str | None = None, **attrs) -> "Element | None":
        found = self.find_all(tag, **attrs)
        return found[0] if found else None

    def __repr__(self) -> str:
        return f"<{self.tag} {self.attrs}>"


def _matches(element: Element, key: str, value) -> bool:
    if value is True:
        return key in element.attrs
    if key == "class":
        return value in element.attrs.get("class", "").split()
    return element.attrs.get(key) == value


class _TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.current = self.root

    def handle_starttag(self, tag, attrs):
        element = Element(tag, {key: (value if value is not None else "") for key, value in attrs}, self.current)
        self.current.children.append(element)
        if tag not in VOID:
            self.current = element

    def handle_startendtag(self, tag, attrs):
        element = Element(tag, {key: (value if value is not None else "") for key, value in attrs}, self.current)
        self.current.children.append(element)

    def handle_endtag(self, tag):
        node = self.current
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def dom(response) -> Element:
    builder = _TreeBuilder()
    builder.feed(response.content.decode())
    return builder.root


def text(response) -> str:
    """The page's text with tags removed and white space collapsed, as read on screen."""
    content = response.content.decode()
    content = re.sub(r"<(script|style)\b.*?</\1>", " ", content, flags=re.S)
    return _squeeze(html.unescape(re.sub(r"<[^>]+>", " ", content)))


def flash_messages(response) -> list[str]:
    """The texts of the portal's message list (success and error notices)."""
    messages = dom(response).find("ul", class_="messages")
    return [item.text for item in messages.find_all("li")] if messages else []


def fields_of(element: Element) -> dict:
    return {field.attrs.get("name"): field.attrs.get("value", "") for field in element.find_all("input")}


def facts(response) -> dict[str, str]:
    """The page's <dt>/<dd> pairs, label → value text, as a person reads a definition list."""
    pairs = {}
    for definition_list in dom(response).find_all("dl"):
        label = None
        for child in definition_list.children:
            if isinstance(child, Element) and child.tag == "dt":
                label = child.text
            elif isinstance(child, Element) and child.tag == "dd" and label is not None:
                pairs[label] = child.text
    return pairs
