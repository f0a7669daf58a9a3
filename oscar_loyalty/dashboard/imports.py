"""Loyalty → Import members: upload a file, read the check, then import it.

Uploading checks the file (a dry run: the whole import, rolled back) in a task;
the page shows what would happen and every row error. Only a file whose check
found no error can be imported, and the import runs again from the file, all or
nothing. Both steps are in the staff audit log; only users with
``oscar_loyalty.import_members`` reach these screens.
"""

import hashlib
import logging
from functools import partial

from django import forms
from django.contrib import messages
from django.contrib.admin.models import ADDITION, CHANGE
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.generic import DetailView, ListView

from .. import tasks
from ..conf import loyalty_settings
from ..imports import COLUMNS, ImportFileError, sniff_format
from ..models import MemberImport
from .views import audit

logger = logging.getLogger(__name__)


class MemberImportForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("Members file (.csv or .xlsx)"),
        help_text=gettext_lazy(
            "UTF-8 CSV or an Excel workbook, header in the first row."
        ),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        try:
            self.file_format = sniff_format(upload.name)
        except ImportFileError as exc:
            raise forms.ValidationError(str(exc)) from None
        largest = loyalty_settings.IMPORT_MAX_MB
        if upload.size > largest * 1024 * 1024:
            raise forms.ValidationError(
                _(
                    "The file is larger than %(size)s MB: import it with "
                    "“manage.py import_members”."
                )
                % {"size": largest}
            )
        if upload.size == 0:
            raise forms.ValidationError(_("The file is empty."))
        return upload


def queue(import_id):
    """Process the upload after the commit; with no broker, in this request."""
    try:
        tasks.process_member_import.delay(import_id)
    except Exception:
        logger.warning(
            "Could not queue members import %s; processing it now",
            import_id,
            exc_info=True,
        )
        tasks.process_member_import(import_id)


class MemberImportListView(ListView):
    """Earlier uploads, newest first, and the form for a new one."""

    template_name = "oscar_loyalty/dashboard/import_list.html"
    context_object_name = "imports"
    paginate_by = 20

    def get_queryset(self):
        return MemberImport.objects.defer("content").order_by("-created_at", "-id")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", MemberImportForm())
        context["columns"] = COLUMNS
        return context

    def post(self, request, *args, **kwargs):
        form = MemberImportForm(request.POST, request.FILES)
        if not form.is_valid():
            self.object_list = self.get_queryset()
            return self.render_to_response(self.get_context_data(form=form))
        upload = form.cleaned_data["file"]
        content = upload.read()
        with transaction.atomic():
            record = MemberImport.objects.create(
                user=request.user,
                user_name=(request.user.get_full_name() or request.user.get_username())[
                    :254
                ],
                file_name=upload.name[:255],
                file_format=form.file_format,
                content=content,
                size=len(content),
                sha256=hashlib.sha256(content).hexdigest(),
                language=translation.get_language() or "",
            )
            audit(request, record, ADDITION, f"Uploaded {record.file_name} to check")
            transaction.on_commit(partial(queue, record.pk), robust=True)
        messages.info(request, _("The file is being checked; nothing is imported yet."))
        return redirect(
            reverse("loyalty_dashboard:loyalty-import-detail", kwargs={"pk": record.pk})
        )


class MemberImportDetailView(DetailView):
    """The check (counts, row errors, a preview) and, once imported, the result."""

    template_name = "oscar_loyalty/dashboard/import_detail.html"
    context_object_name = "upload"

    def get_queryset(self):
        return MemberImport.objects.defer("content")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        upload = self.object
        check = upload.check_report or {}
        context.update(
            check=check,
            result=upload.import_report or {},
            working=upload.status
            in (MemberImport.Status.CHECKING, MemberImport.Status.IMPORTING),
            can_check_again=can_check_again(upload),
            can_import=can_import(upload),
        )
        return context


class MemberImportRunView(View):
    """POST: import a checked file without errors (once: a second press, or a file
    already imported, changes nothing); with ``action=check``, check a file again
    that failed or could not be checked."""

    http_method_names = ["post"]

    def post(self, request, pk):
        if request.POST.get("action") == "check":
            if advance(request, pk, can_check_again, MemberImport.Status.CHECKING):
                messages.info(request, _("The file is being checked again."))
            else:
                messages.error(request, _("This file cannot be checked again."))
        elif advance(request, pk, can_import, MemberImport.Status.IMPORTING):
            messages.info(request, _("Importing the file."))
        else:
            messages.error(
                request,
                _(
                    "Only a checked file without errors can be imported: "
                    "nothing was done."
                ),
            )
        return redirect(
            reverse("loyalty_dashboard:loyalty-import-detail", kwargs={"pk": pk})
        )


#: What the audit log says when an upload moves to a status.
AUDITED = {
    MemberImport.Status.CHECKING: "Checking {} again",
    MemberImport.Status.IMPORTING: "Started importing {}",
}


def advance(request, pk, allowed, status):
    """Move the upload ``pk`` to ``status`` if ``allowed(upload)``, under its row
    lock, audited, and queue its processing for after the commit; True if moved."""
    with transaction.atomic():
        record = get_object_or_404(
            MemberImport.objects.select_for_update().defer("content"), pk=pk
        )
        if not allowed(record):
            return False
        record.status = status
        record.save(update_fields=["status"])
        audit(request, record, CHANGE, AUDITED[status].format(record.file_name))
        transaction.on_commit(partial(queue, record.pk), robust=True)
    return True


def can_import(record):
    """A checked file whose check found rows and no error."""
    check = record.check_report or {}
    return bool(
        record.status == MemberImport.Status.CHECKED
        and check.get("rows")
        and not check.get("error_count")
        and not check.get("file_error")
    )


def can_check_again(record):
    """A file that failed to import, or whose check could not read it through,
    while its content is still kept."""
    stuck = record.status == MemberImport.Status.FAILED or (
        record.status == MemberImport.Status.CHECKED
        and (record.check_report or {}).get("file_error")
    )
    return bool(stuck) and (
        MemberImport.objects.filter(pk=record.pk, content__isnull=False).exists()
    )
