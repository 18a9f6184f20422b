import sys
from pathlib import Path

# Test helpers shared by tests/graph and tests/e2e (tiny ONNX models built in code).
sys.path.insert(0, str(Path(__file__).parent / "graph"))
