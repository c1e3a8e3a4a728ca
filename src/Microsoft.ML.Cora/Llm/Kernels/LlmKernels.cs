namespace Microsoft.ML.Cora.Llm.Kernels;

/// <summary>Which of Cora's CPU kernels an LLM forward uses in place of libtorch's operations; each gives libtorch's numbers up to
/// float32 rounding, and each applies only where it can (float32 on the CPU; elsewhere libtorch runs).</summary>
/// <param name="Attention">plain causal attention: libtorch's or <see cref="NarrowHeadAttention"/> (see <see cref="AttentionKernelChoice"/>)</param>
/// <param name="NormAndRotary">the RMS norms through <see cref="RmsNormKernel"/> and, with <see cref="NarrowHeadAttention"/>'s token-major
/// heads, the rotary embedding through <see cref="RotaryKernel"/></param>
public readonly record struct LlmKernels(AttentionKernel Attention, bool NormAndRotary)
{
    /// <summary>Every kernel on, attention with 256-bit vectors (what an LLM forward uses when not told otherwise).</summary>
    public static LlmKernels Default { get; } = new(AttentionKernel.NarrowHead, true);

    /// <summary>libtorch's operations only.</summary>
    public static LlmKernels None { get; } = new(AttentionKernel.Libtorch, false);
}
