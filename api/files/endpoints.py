"""/v1/files: thin routes over the files service."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response

from api.db import end_reads
from api.deps import CallerDep, SessionDep, SettingsDep, UploadRateLimit
from api.errors import InvalidRequest, NotFound
from api.files import service
from api.files.schemas import FileDeleted, FileObject
from api.files.storage import FileStorage
from api.fine_tuning import tar_download
from api.pagination import Page

# FastAPI's own route class, not api/one_hop.py's: with it an upload among a whole-model job's
# storing waited over a second (tests/e2e/test_storage_stalls_nothing.py); the cause is not yet known.
router = APIRouter(prefix="/v1/files", tags=["files"])


async def get_storage(request: Request) -> FileStorage:  # async: no threadpool hop
    return request.app.state.file_storage


StorageDep = Annotated[FileStorage, Depends(get_storage)]


async def require_file_part(request: Request, _caller: CallerDep) -> None:
    """Say what is wrong with a body that is not a file upload, where FastAPI would only say that the
    file is missing (a JSON body) or quote a Python type (a `file` field without a filename).

    Runs after authentication (it takes the caller) and before the form is validated; the form it
    reads is the one FastAPI already parsed and cached.
    """
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        raise InvalidRequest(
            "POST /v1/files takes a multipart/form-data body with a 'file' part and a 'purpose' field, "
            f"not {content_type or 'a body without a Content-Type'}.",
            param="file",
        )
    if isinstance((await request.form()).get("file"), str):
        raise InvalidRequest(
            "file must be a file part (Content-Disposition with a filename), not a plain form field.",
            param="file",
        )


@router.post("", response_model=FileObject, dependencies=[UploadRateLimit, Depends(require_file_part)])
def create_file(
    session: SessionDep,
    caller: CallerDep,
    storage: StorageDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="The JSONL dataset.")],
    purpose: Annotated[str, Form(description="'fine-tune'.")],
    # The SDK flattens expires_after={"anchor", "seconds"} into these two form fields.
    expires_after_anchor: Annotated[Literal["created_at"] | None, Form(alias="expires_after[anchor]")] = None,
    expires_after_seconds: Annotated[int | None, Form(alias="expires_after[seconds]")] = None,
) -> FileObject:
    row = service.upload(
        session,
        storage,
        caller.project,
        stream=file.file,
        filename=file.filename or "",
        purpose=purpose,
        limits=service.UploadLimits.of(settings),
        expires_after_seconds=expires_after_seconds,
    )
    return FileObject.of(row)


@router.get("", response_model=Page[FileObject])
def list_files(
    session: SessionDep,
    caller: CallerDep,
    purpose: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 10000,
    order: Literal["asc", "desc"] = "desc",
) -> Page[FileObject]:
    rows, has_more = service.list_page(
        session, caller, purpose=purpose, after=after, limit=limit, order=order
    )
    return Page.of([FileObject.of(row) for row in rows], has_more)


@router.get("/{file_id}", response_model=FileObject)
def retrieve_file(session: SessionDep, caller: CallerDep, file_id: str) -> FileObject:
    return FileObject.of(service.get(session, caller, file_id))


@router.delete("/{file_id}", response_model=FileDeleted)
def delete_file(session: SessionDep, caller: CallerDep, storage: StorageDep, file_id: str) -> FileDeleted:
    service.delete(session, storage, caller, file_id)
    return FileDeleted(id=file_id, deleted=True)


@router.get(
    "/{file_id}/content",
    response_class=FileResponse,
    responses={
        200: {"description": "The file's bytes.", "content": {"application/octet-stream": {}}},
        206: {"description": "The requested byte range (`Range: bytes=a-b`)."},
    },
)
def retrieve_file_content(
    session: SessionDep, caller: CallerDep, storage: StorageDep, request: Request, file_id: str
) -> Response:
    row = service.get(session, caller, file_id)
    key, filename = row.storage_key, row.filename
    local = storage.local_path(key)
    if local is not None:
        return FileResponse(local, media_type="application/octet-stream", filename=filename)
    end_reads(session)  # what follows is a network call: no transaction stays open across it
    stored = storage.stat(key)
    if stored is None:
        raise NotFound(f"The content of {file_id} is gone (the file is being deleted).", param="id")
    return tar_download.ranged_response(
        request,
        stored.size,
        stored.etag,
        lambda start, end: storage.read(key, start, end),
        filename,
        "application/octet-stream",
    )
