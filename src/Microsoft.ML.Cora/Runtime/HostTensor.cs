using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Runtime;

/// <summary>Direct access to the memory of contiguous float32 CPU tensors, for Cora's SIMD kernels.</summary>
internal static class HostTensor
{
    /// <summary>The first element of <paramref name="x"/> (contiguous, float32, on the CPU; its storage offset included). The
    /// pointer is valid while the tensor lives: callers keep it alive (<c>GC.KeepAlive</c>) until they are done.</summary>
    public static unsafe float* Floats(Tensor x) =>
        (float*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(MemoryMarshal.Cast<byte, float>(x.bytes)));

    /// <summary>Whether a kernel can read <paramref name="x"/> through <see cref="Floats"/> with int indices: float32, on the CPU,
    /// contiguous, at most <see cref="int.MaxValue"/> elements.</summary>
    public static bool IsHostFloats(Tensor x) =>
        x.device_type == DeviceType.CPU && x.dtype == ScalarType.Float32 && x.is_contiguous() && x.numel() <= int.MaxValue;

    /// <summary>Parallel.For options for the kernels: as many workers as libtorch's intra-op threads.</summary>
    public static ParallelOptions Parallelism() => new() { MaxDegreeOfParallelism = CoraDevice.Threads };
}
