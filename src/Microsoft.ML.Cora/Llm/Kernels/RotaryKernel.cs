using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static Microsoft.ML.Cora.Runtime.HostTensor;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Llm.Kernels;

/// <summary>
/// Rotary position embedding in the "rotate_half" layout, <c>y = x · cos + rotate_half(x) · sin</c>, for token-major heads
/// [B, T, heads, hd], forward and backward each as one SIMD pass in C# (float32 on the CPU).
/// </summary>
/// <remarks>
/// libtorch computes it as two slices, a negation, a concatenation, two multiplies and an add, each a pass over the activations
/// with its own temporary, and as many backward: for stories260K's 8-wide heads that bookkeeping is the whole cost. With
/// x = [x1, x2] (halves), y1 = x1 · cos1 - x2 · sin1 and y2 = x2 · cos2 + x1 · sin2; the backward is the transpose,
/// dx1 = dy1 · cos1 + dy2 · sin2 and dx2 = dy2 · cos2 - dy1 · sin1. The same numbers as <see cref="RotaryEmbedding.Apply"/> up to
/// float32 rounding (tested).
/// </remarks>
internal static class RotaryKernel
{
    /// <summary>Whether the kernel takes <paramref name="x"/> [B, T, heads, hd] with tables [B, T, hd]: float32 on the CPU, hd even.</summary>
    public static bool Supports(Tensor x, Tensor cos, Tensor sin) =>
        x.device_type == DeviceType.CPU && x.dtype == ScalarType.Float32 && x.dim() == 4 && x.shape[3] % 2 == 0
        && cos.dtype == ScalarType.Float32 && sin.dtype == ScalarType.Float32 && cos.device_type == DeviceType.CPU && sin.device_type == DeviceType.CPU
        && cos.shape.SequenceEqual(new[] { x.shape[0], x.shape[1], x.shape[3] }) && sin.shape.SequenceEqual(cos.shape)
        && !cos.requires_grad && !sin.requires_grad && Vector128.IsHardwareAccelerated;

    /// <summary>The rotated heads, with autograd to <paramref name="x"/> when it requires a gradient.</summary>
    /// <param name="x">[B, T, heads, hd]</param>
    /// <param name="cos">[B, T, hd], the same for every head</param>
    /// <param name="sin">[B, T, hd]</param>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        if (!Supports(x, cos, sin)) throw new ArgumentException($"RotaryKernel takes float32 CPU heads [B, T, heads, hd] (hd even) and tables [B, T, hd] without gradients; got x {x.dtype} [{string.Join(", ", x.shape)}], cos [{string.Join(", ", cos.shape)}], sin [{string.Join(", ", sin.shape)}].");
        if (torch.is_grad_enabled() && x.requires_grad) return RotaryFunction.apply(x, cos, sin);
        using var xc = x.contiguous(); using var cc = cos.contiguous(); using var sc = sin.contiguous();
        return Rotate(xc, cc, sc, inverse: false);
    }

    private sealed class RotaryFunction : autograd.SingleTensorFunction<RotaryFunction>
    {
        public override string Name => "RotaryKernel";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var x = ((Tensor)vars[0]).contiguous(); var cos = ((Tensor)vars[1]).contiguous(); var sin = ((Tensor)vars[2]).contiguous();
            ctx.save_for_backward(new List<Tensor> { cos, sin });
            return Rotate(x, cos, sin, inverse: false);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var saved = ctx.get_saved_variables();
            using var cos = saved[0]; using var sin = saved[1];
            using var dy = gradOutput.contiguous();
            return new List<Tensor> { Rotate(dy, cos, sin, inverse: true), null!, null! };   // the tables take no gradient
        }
    }

    /// <summary>The rotation (forward) or its transpose (<paramref name="inverse"/>: the backward, i.e. the rotation by -angle), in one
    /// pass on the calling thread (a few hundred microseconds: less than handing it to a busy thread pool can cost).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe Tensor Rotate(Tensor x, Tensor cos, Tensor sin, bool inverse)
    {
        int b = (int)x.shape[0], t = (int)x.shape[1], heads = (int)x.shape[2], hd = (int)x.shape[3], half = hd / 2;
        var y = torch.empty(x.shape, ScalarType.Float32);
        int positions = b * t;
        if (positions == 0 || heads == 0 || hd == 0) return y;
        float* xp = Floats(x), yp = Floats(y), cp = Floats(cos), sp = Floats(sin);
        for (int pos = 0; pos < positions; pos++)
        {
            float* cr = cp + (long)pos * hd, sr = sp + (long)pos * hd;
            for (int h = 0; h < heads; h++)
            {
                float* xr = xp + ((long)pos * heads + h) * hd, yr = yp + ((long)pos * heads + h) * hd;
                int i = 0;
                if (!inverse)
                {
                    // y1 = x1 cos1 - x2 sin1, y2 = x2 cos2 + x1 sin2
                    for (; i + 4 <= half; i += 4)
                    {
                        var x1 = Vector128.Load(xr + i); var x2 = Vector128.Load(xr + half + i);
                        (x1 * Vector128.Load(cr + i) - x2 * Vector128.Load(sr + i)).Store(yr + i);
                        (x2 * Vector128.Load(cr + half + i) + x1 * Vector128.Load(sr + half + i)).Store(yr + half + i);
                    }
                    for (; i < half; i++)
                    {
                        float x1 = xr[i], x2 = xr[half + i];
                        yr[i] = x1 * cr[i] - x2 * sr[i];
                        yr[half + i] = x2 * cr[half + i] + x1 * sr[half + i];
                    }
                }
                else
                {
                    // dx1 = dy1 cos1 + dy2 sin2, dx2 = dy2 cos2 - dy1 sin1
                    for (; i + 4 <= half; i += 4)
                    {
                        var g1 = Vector128.Load(xr + i); var g2 = Vector128.Load(xr + half + i);
                        (g1 * Vector128.Load(cr + i) + g2 * Vector128.Load(sr + half + i)).Store(yr + i);
                        (g2 * Vector128.Load(cr + half + i) - g1 * Vector128.Load(sr + i)).Store(yr + half + i);
                    }
                    for (; i < half; i++)
                    {
                        float g1 = xr[i], g2 = xr[half + i];
                        yr[i] = g1 * cr[i] + g2 * sr[half + i];
                        yr[half + i] = g2 * cr[half + i] - g1 * sr[i];
                    }
                }
            }
        }
        GC.KeepAlive(x); GC.KeepAlive(cos); GC.KeepAlive(sin);
        return y;
    }
}
