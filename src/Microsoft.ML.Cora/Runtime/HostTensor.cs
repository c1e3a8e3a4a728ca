using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Runtime;

/// <summary>Direct access to the memory of contiguous float32 CPU tensors, for Cora's SIMD kernels.</summary>
internal static class HostTensor
{
    /// <summary>The first element of <paramref name="x"/> (contiguous, float32, on the CPU; its storage offset included). The
    /// pointer is valid while the tensor lives: callers keep it alive (<c>GC.KeepAlive</c>) until they are done.</summary>
    public static unsafe float* Floats(Tensor x) =>
        (float*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(MemoryMarshal.Cast<byte, float>(x.bytes)));
}
