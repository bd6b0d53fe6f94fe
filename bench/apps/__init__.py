"""FastAPI apps that the benchmarks serve with uvicorn."""
