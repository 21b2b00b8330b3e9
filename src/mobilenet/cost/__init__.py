"""What a family member costs: counted on the meta device (`count`), in closed form (`formulas`), receptive field
(`receptive_field`) and roofline (`roofline`)."""

from mobilenet.cost.count import CostReport, LayerCost, count_module, family, profile

__all__ = ["CostReport", "LayerCost", "count_module", "family", "profile"]
