"""Admin page titles that read well in French: « Hébergements », « Hébergement example.org ».

Django builds its titles as "View %s", "Change %s", "Add %s", "Select %s to change" around a
model's verbose name, which French cannot follow (« Affichage de hébergement »: no elision, no
article). Here a list is titled by its plural, an object's page by its kind and its name, and the
add page and button by a whole phrase each admin declares (`add_title`).
"""

from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

# The title of an object's page, e.g. « Hébergement example.org ».
OBJECT_TITLE = _("%(model)s %(object)s")


class ProductTitles:
    """ModelAdmin mixin: the titles of the list, of an object's page and of the add page."""

    add_title = None  # e.g. _("Add a hosting"): the add page's title and the list's button

    def object_title(self, obj) -> str:
        """An object's page title; admins whose objects name their kind (events) return str(obj)."""
        return OBJECT_TITLE % {"model": capfirst(self.model._meta.verbose_name), "object": obj}

    def changelist_view(self, request, extra_context=None):
        titles = {"title": capfirst(self.model._meta.verbose_name_plural), "add_label": self.add_title}
        return super().changelist_view(request, {**titles, **(extra_context or {})})

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(title=self.object_title(obj), subtitle=None)
        elif add and self.add_title:
            context.update(title=self.add_title)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)


def yes_no(value: bool) -> str:
    """A boolean as the admin should say it: Django's read-only icon reads "True"/"False" in English."""
    return _("yes") if value else _("no")
