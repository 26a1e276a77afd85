"""Adapters from transformers models to the engine's arrays; importing registers the loaders."""

from engine.models.adapters.blip import BlipCaptioner
from engine.models.adapters.grounding_dino import GroundingDinoGrounder
from engine.models.adapters.sam import SamSegmenter

__all__ = ["BlipCaptioner", "GroundingDinoGrounder", "SamSegmenter"]
