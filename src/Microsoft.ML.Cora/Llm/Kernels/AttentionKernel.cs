namespace Microsoft.ML.Cora.Llm.Kernels;

/// <summary>Which code computes the LLM's plain causal attention on the CPU (<see cref="AttentionKernelChoice"/> measures them).</summary>
public enum AttentionKernel
{
    /// <summary>libtorch's scaled-dot-product attention.</summary>
    Libtorch,
    /// <summary><see cref="NarrowHeadAttention"/> with 256-bit vectors (heads up to <see cref="NarrowHeadAttention.MaxHeadDim"/> wide).</summary>
    NarrowHead,
    /// <summary><see cref="NarrowHeadAttention"/> with 512-bit vectors (8-wide heads on a CPU with AVX-512; others use 256-bit).</summary>
    NarrowHead512,
}
