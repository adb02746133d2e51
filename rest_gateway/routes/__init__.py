"""One APIRouter per area of the REST reference."""
