"""Quant building blocks: Black-Scholes-Merton pricing and the vectorised implied-vol solver."""
