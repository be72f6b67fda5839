"""What the chip IS: frozen specs and the sourced YAML catalog."""

from .catalog import catalog_ids, chip_from_dict, list_chips, load_chip
from .spec import ChipSpec

__all__ = ["ChipSpec", "catalog_ids", "chip_from_dict", "list_chips", "load_chip"]
