"""Live paper trading and recording: feeds -> sampler -> streaming features -> model -> risk -> paper broker."""
