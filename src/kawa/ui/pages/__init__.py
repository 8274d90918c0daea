"""The UI's pages, one module per part of the platform; each holds an APIRouter named `router`."""
