using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static Microsoft.ML.Cora.Runtime.HostTensor;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Llm.Kernels;

/// <summary>
/// Root-mean-square norm with a frozen weight, <c>y = x · rsqrt(mean(x²) + eps) · w</c> over the last dimension, forward and
/// backward each as one SIMD pass over the rows in C# (float32 on the CPU).
/// </summary>
/// <remarks>
/// libtorch computes it as five operations forward (square, mean, add, rsqrt, two multiplies) and about ten backward, each a
/// pass over the activations with its own temporary: for narrow rows (stories260K's are 64 wide) that bookkeeping is most of the
/// cost. The backward uses the saved
/// reciprocal root of each row: dx = r · g - x · r³ · (g · x) / D with g = dy · w. The same numbers as <see cref="RmsNorm"/>'s
/// libtorch path up to float32 rounding (tested).
/// </remarks>
internal static class RmsNormKernel
{
    /// <summary>Whether the kernel takes <paramref name="x"/> with <paramref name="weight"/>: float32 on the CPU, a frozen weight as wide as
    /// the last dimension.</summary>
    public static bool Supports(Tensor x, Tensor weight) =>
        x.device_type == DeviceType.CPU && x.dtype == ScalarType.Float32 && weight.device_type == DeviceType.CPU && weight.dtype == ScalarType.Float32
        && x.dim() >= 1 && weight.dim() == 1 && x.shape[^1] == weight.shape[0] && !weight.requires_grad && Vector256.IsHardwareAccelerated;

    /// <summary>The normed rows, with autograd to <paramref name="x"/> when it requires a gradient.</summary>
    /// <param name="x">[..., D] float32 on the CPU</param>
    /// <param name="weight">[D], frozen</param>
    /// <param name="eps">added to the mean square</param>
    public static Tensor Apply(Tensor x, Tensor weight, double eps)
    {
        if (!Supports(x, weight)) throw new ArgumentException($"RmsNormKernel takes float32 CPU rows [..., D] and a frozen float32 weight [D]; got {x.dtype} [{string.Join(", ", x.shape)}] on {x.device} and {weight.dtype} [{string.Join(", ", weight.shape)}].");
        if (torch.is_grad_enabled() && x.requires_grad) return NormFunction.apply(x, weight, eps);
        using var xc = x.contiguous(); using var wc = weight.contiguous();
        return Forward(xc, wc, (float)eps, rstd: null);
    }

    private sealed class NormFunction : autograd.SingleTensorFunction<NormFunction>
    {
        public override string Name => "RmsNormKernel";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var x = ((Tensor)vars[0]).contiguous(); var w = ((Tensor)vars[1]).contiguous();
            var rstd = torch.empty(x.numel() / Math.Max(1, x.shape[^1]), ScalarType.Float32);
            var y = Forward(x, w, (float)(double)vars[2], rstd);
            ctx.save_for_backward(new List<Tensor> { x, w, rstd });
            return y;
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var saved = ctx.get_saved_variables();
            using var x = saved[0]; using var w = saved[1]; using var rstd = saved[2];
            using var dy = gradOutput.contiguous();
            return new List<Tensor> { Backward(x, w, rstd, dy), null!, null! };            // no gradient for the frozen weight and eps
        }
    }

    // One pass on the calling thread: the work is a few hundred microseconds, less than handing it to the thread pool can cost
    // when the pool is busy (a server, a collector loop).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe Tensor Forward(Tensor x, Tensor w, float eps, Tensor? rstd)
    {
        int d = (int)x.shape[^1], rows = d == 0 ? 0 : (int)(x.numel() / d);
        var y = torch.empty(x.shape, ScalarType.Float32);
        if (rows == 0) return y;
        float* xp = Floats(x), wp = Floats(w), yp = Floats(y), rp = rstd is null ? null : Floats(rstd);
        for (int row = 0; row < rows; row++)
        {
            float* xr = xp + (long)row * d, yr = yp + (long)row * d;
            float r = 1f / MathF.Sqrt(Dot(xr, xr, d) / d + eps);
            if (rp is not null) rp[row] = r;
            int i = 0;
            var vr = Vector256.Create(r);
            for (; i + 8 <= d; i += 8) (Vector256.Load(xr + i) * vr * Vector256.Load(wp + i)).Store(yr + i);
            for (; i < d; i++) yr[i] = xr[i] * r * wp[i];
        }
        GC.KeepAlive(x); GC.KeepAlive(w); GC.KeepAlive(rstd);
        return y;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe Tensor Backward(Tensor x, Tensor w, Tensor rstd, Tensor dy)
    {
        int d = (int)x.shape[^1], rows = d == 0 ? 0 : (int)(x.numel() / d);
        var dx = torch.empty(x.shape, ScalarType.Float32);
        if (rows == 0) return dx;
        float* xp = Floats(x), wp = Floats(w), rp = Floats(rstd), gp = Floats(dy), dp = Floats(dx);
        for (int row = 0; row < rows; row++)
        {
            float* xr = xp + (long)row * d, gr = gp + (long)row * d, dr = dp + (long)row * d;
            float r = rp[row];
            // g = dy · w; dx = r · g - x · r³ · (g · x) / D
            var acc = Vector256<float>.Zero;
            int i = 0;
            for (; i + 8 <= d; i += 8) acc = Vector256.FusedMultiplyAdd(Vector256.Load(gr + i) * Vector256.Load(wp + i), Vector256.Load(xr + i), acc);
            float dot = Vector256.Sum(acc);
            for (; i < d; i++) dot += gr[i] * wp[i] * xr[i];
            float k = r * r * r * dot / d;
            var vr = Vector256.Create(r); var vk = Vector256.Create(k);
            for (i = 0; i + 8 <= d; i += 8)
                (Vector256.Load(gr + i) * Vector256.Load(wp + i) * vr - Vector256.Load(xr + i) * vk).Store(dr + i);
            for (; i < d; i++) dr[i] = gr[i] * wp[i] * r - xr[i] * k;
        }
        GC.KeepAlive(x); GC.KeepAlive(w); GC.KeepAlive(rstd); GC.KeepAlive(dy);
        return dx;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe float Dot(float* a, float* b, int n)
    {
        var acc = Vector256<float>.Zero;
        int i = 0;
        for (; i + 8 <= n; i += 8) acc = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc);
        float sum = Vector256.Sum(acc);
        for (; i < n; i++) sum += a[i] * b[i];
        return sum;
    }
}
