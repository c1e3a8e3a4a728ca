using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static Microsoft.ML.Cora.Runtime.HostTensor;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Llm.Kernels;

/// <summary>
/// Causal self-attention for narrow heads (head width up to <see cref="MaxHeadDim"/>) on the CPU in float32, forward and
/// backward, as one fused pass per (row, key-value head) in SIMD C#.
/// </summary>
/// <remarks>
/// Why: libtorch's CPU scaled-dot-product attention is built for wide heads. With stories260K's 8-wide heads over ~300 tokens
/// its cost is bookkeeping around tiny matrix blocks, not arithmetic: 12.7 ms forward and 47.5 ms forward + backward per layer
/// at a training batch of 16 (<c>AttentionBenchmark</c>), a third of a CoRA training step. Here each query row's scores,
/// softmax and weighted sum run over keys laid out column-wise (8 keys per vector; for 8-wide heads in blocks of 8 keys x 8
/// dimensions, see <see cref="At"/>), so the work is the arithmetic itself: per (query, key) pair 2·hd multiply-adds and one
/// exponential forward, 5·hd and one exponential backward.
/// <para>Exactly what <c>scaled_dot_product_attention(q, k, v, is_causal: true)</c> computes (scale 1/sqrt(hd), keys 0..i for
/// query i, grouped-query heads read key-value head h / (H / KV)), up to float32 rounding (tests: outputs and gradients within
/// 1e-5 of it). The backward recomputes the probabilities from the saved log-sum-exp of each query row (as flash attention
/// does), so nothing of size T x T is ever stored. The loops are compiled fully optimised at their first call (no tier-0 steps).</para>
/// </remarks>
internal static class NarrowHeadAttention
{
    /// <summary>The widest head the kernel takes; wider heads go to libtorch (whose blocked kernels suit them).</summary>
    public const int MaxHeadDim = 32;

    private const int W = 8;   // floats per Vector256

    /// <summary>Whether the kernel can compute this attention: CPU, float32, head width at most <see cref="MaxHeadDim"/>.</summary>
    /// <param name="q">[B, T, H, hd]</param>
    public static bool Supports(Tensor q) =>
        q.device_type == DeviceType.CPU && q.dtype == ScalarType.Float32 && q.dim() == 4 && q.shape[3] <= MaxHeadDim && Vector256.IsHardwareAccelerated;

    /// <summary>Whether <see cref="Causal"/> can take <paramref name="q"/> with 512-bit vectors (16 keys at a time): 8-wide heads
    /// on a CPU with AVX-512. Whether that is faster than 256-bit vectors depends on the CPU (two 512-bit FMA units, one, or
    /// 256-bit units run twice); <see cref="AttentionKernelChoice"/> measures it.</summary>
    public static bool Supports512(Tensor q) => Supports(q) && Supports512(q.shape[3]);

    /// <summary>Whether heads <paramref name="headDim"/> wide can run with 512-bit vectors on this CPU.</summary>
    public static bool Supports512(long headDim) => headDim == 8 && Avx512F.IsSupported && Vector512.IsHardwareAccelerated;

    /// <summary>Causal attention output, with autograd when any input requires a gradient.</summary>
    /// <param name="q">[B, T, H, hd] float32 on the CPU (positions already rotated)</param>
    /// <param name="k">[B, T, KV, hd], H a multiple of KV</param>
    /// <param name="v">[B, T, KV, hd]</param>
    /// <param name="vectorBits">256, or 512 where <see cref="Supports512"/> (elsewhere 256 is used): the same results up to float32
    /// rounding, at a speed that depends on the CPU</param>
    /// <returns>[B, T, H, hd]</returns>
    public static Tensor Causal(Tensor q, Tensor k, Tensor v, int vectorBits = 256)
    {
        Check(q, k, v);
        if (vectorBits is not (256 or 512)) throw new ArgumentOutOfRangeException(nameof(vectorBits), vectorBits, "The kernel's vectors are 256 or 512 bits wide.");
        bool wide = vectorBits == 512 && Supports512(q);
        bool grad = torch.is_grad_enabled() && (q.requires_grad || k.requires_grad || v.requires_grad);
        if (grad) return wide ? CausalFunction512.apply(q, k, v) : CausalFunction.apply(q, k, v);
        using var qc = q.contiguous(); using var kc = k.contiguous(); using var vc = v.contiguous();
        return (wide ? Forward512(qc, kc, vc, saveLse: false) : Forward(qc, kc, vc, saveLse: false)).output;
    }

    private static void Check(Tensor q, Tensor k, Tensor v)
    {
        if (!Supports(q)) throw new ArgumentException($"NarrowHeadAttention takes float32 CPU tensors [B, T, H, hd <= {MaxHeadDim}]; got {q.dtype} on {q.device} with shape [{string.Join(", ", q.shape)}].", nameof(q));
        if (k.dim() != 4 || v.dim() != 4 || !k.shape.SequenceEqual(v.shape) || k.shape[0] != q.shape[0] || k.shape[1] != q.shape[1]
            || k.shape[3] != q.shape[3] || q.shape[2] % k.shape[2] != 0 || k.dtype != q.dtype || v.dtype != q.dtype
            || k.device_type != DeviceType.CPU || v.device_type != DeviceType.CPU)
            throw new ArgumentException($"NarrowHeadAttention: keys and values must be [B, T, KV, hd] float32 CPU tensors with KV dividing H; got q [{string.Join(", ", q.shape)}], k [{string.Join(", ", k.shape)}], v [{string.Join(", ", v.shape)}].");
    }

    private abstract class CausalFunctionBase<T> : autograd.SingleTensorFunction<T> where T : CausalFunctionBase<T>, new()
    {
        /// <summary>512-bit vectors (<see cref="Forward512"/>, <see cref="Backward512"/>) instead of 256-bit ones.</summary>
        protected abstract bool Wide { get; }

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var q = ((Tensor)vars[0]).contiguous(); var k = ((Tensor)vars[1]).contiguous(); var v = ((Tensor)vars[2]).contiguous();
            var (output, lse) = Wide ? Forward512(q, k, v, saveLse: true) : Forward(q, k, v, saveLse: true);
            // The output is saved detached: its autograd history points back at this node, which would otherwise hold itself.
            ctx.save_for_backward(new List<Tensor> { q, k, v, output.detach(), lse! });
            return output;
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var saved = ctx.get_saved_variables();
            using var q = saved[0]; using var k = saved[1]; using var v = saved[2]; using var o = saved[3]; using var lse = saved[4];
            using var dO = gradOutput.contiguous();
            var (dq, dk, dv) = Wide ? Backward512(q, k, v, o, lse, dO) : Backward(q, k, v, o, lse, dO);
            return new List<Tensor> { dq, dk, dv };
        }
    }

    private sealed class CausalFunction : CausalFunctionBase<CausalFunction>
    {
        public override string Name => "NarrowHeadCausalAttention";
        protected override bool Wide => false;
    }

    private sealed class CausalFunction512 : CausalFunctionBase<CausalFunction512>
    {
        public override string Name => "NarrowHeadCausalAttention512";
        protected override bool Wide => true;
    }

    /// <returns>output [B, T, H, hd]; lse [B, H, T] (log-sum-exp of each query's scaled scores) when asked</returns>
    private static unsafe (Tensor output, Tensor? lse) Forward(Tensor q, Tensor k, Tensor v, bool saveLse)
    {
        int b = (int)q.shape[0], t = (int)q.shape[1], h = (int)q.shape[2], hd = (int)q.shape[3], kv = (int)k.shape[2];
        var output = torch.empty(q.shape, ScalarType.Float32);
        var lse = saveLse ? torch.empty(new long[] { b, h, t }, ScalarType.Float32) : null;
        if (t == 0 || b == 0) return (output, lse);
        float* qp = Floats(q), kp = Floats(k), vp = Floats(v), op = Floats(output), lp = lse is null ? null : Floats(lse);
        int rep = h / kv, tp = (t + W - 1) / W * W;
        float scale = 1f / MathF.Sqrt(hd);
        Parallel.For(0, b * kv, Parallelism(), [MethodImpl(MethodImplOptions.AggressiveOptimization)] (item) =>
        {
            int bi = item / kv, g = item % kv;
            var buffer = new float[2 * hd * tp + tp + hd + W16];                  // kt, vt, s, qi and room to align
            fixed (float* buf0 = buffer)
            {
                float* buf = Align(buf0);
                float* kt = buf, vt = buf + hd * tp, s = buf + 2 * hd * tp;     // kt, vt: hd x tp in the layout of At; s: [tp]
                Transpose(kp, kt, bi, g, t, kv, hd, tp);
                Transpose(vp, vt, bi, g, t, kv, hd, tp);
                float* qi = s + tp;                                              // [hd] (scaled query)
                for (int r = 0; r < rep; r++)
                {
                    int head = g * rep + r;
                    for (int i = 0; i < t; i++)
                    {
                        float* qrow = qp + (((long)bi * t + i) * h + head) * hd;
                        for (int d = 0; d < hd; d++) qi[d] = qrow[d] * scale;
                        int nv = i / W + 1;                                      // vectors covering keys 0..i
                        float max = hd == 8 ? Scores8(qi, kt, s, tp, nv, i) : Scores(qi, kt, s, hd, tp, nv, i);
                        float* orow = op + (((long)bi * t + i) * h + head) * hd;
                        float sum = hd == 8 ? Weighted8(s, vt, tp, nv, max, orow) : Weighted(s, vt, hd, tp, nv, max, orow);
                        if (lp is not null) lp[((long)bi * h + head) * t + i] = max + MathF.Log(sum);
                    }
                }
            }
        });
        GC.KeepAlive(q); GC.KeepAlive(k); GC.KeepAlive(v);
        return (output, lse);
    }

    private static unsafe (Tensor dq, Tensor dk, Tensor dv) Backward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dO)
    {
        int b = (int)q.shape[0], t = (int)q.shape[1], h = (int)q.shape[2], hd = (int)q.shape[3], kv = (int)k.shape[2];
        var dq = torch.empty(q.shape, ScalarType.Float32);
        var dk = torch.empty(k.shape, ScalarType.Float32);
        var dv = torch.empty(v.shape, ScalarType.Float32);
        if (t == 0 || b == 0) return (dq, dk, dv);
        float* qp = Floats(q), kp = Floats(k), vp = Floats(v), op = Floats(o), lp = Floats(lse), gp = Floats(dO);
        float* dqp = Floats(dq), dkp = Floats(dk), dvp = Floats(dv);
        int rep = h / kv, tp = (t + W - 1) / W * W;
        float scale = 1f / MathF.Sqrt(hd);
        Parallel.For(0, b * kv, Parallelism(), [MethodImpl(MethodImplOptions.AggressiveOptimization)] (item) =>
        {
            int bi = item / kv, g = item % kv;
            var buffer = new float[4 * hd * tp + 3 * tp + 2 * hd + W16];
            Array.Clear(buffer);
            fixed (float* buf0 = buffer)
            {
                float* buf = Align(buf0);
                float* kt = buf, vt = kt + hd * tp, dkt = vt + hd * tp, dvt = dkt + hd * tp;   // hd x tp each, in the layout of At
                float* p = dvt + hd * tp, dp = p + tp, ds = dp + tp, qi = ds + tp, gi = qi + hd;
                Transpose(kp, kt, bi, g, t, kv, hd, tp);
                Transpose(vp, vt, bi, g, t, kv, hd, tp);
                for (int r = 0; r < rep; r++)
                {
                    int head = g * rep + r;
                    for (int i = 0; i < t; i++)
                    {
                        long row = (((long)bi * t + i) * h + head) * hd;
                        float delta = 0;                                          // D_i = dO_i . O_i
                        for (int d = 0; d < hd; d++) { qi[d] = qp[row + d] * scale; gi[d] = gp[row + d]; delta += gi[d] * op[row + d]; }
                        int nv = i / W + 1;
                        float* dqrow = dqp + row;
                        if (hd == 8)
                        {
                            Backward8(qi, gi, kt, vt, dkt, dvt, tp, nv, i, lp[((long)bi * h + head) * t + i], delta, scale, dqrow);
                            continue;
                        }
                        Scores(qi, kt, p, hd, tp, nv, i);
                        var vl = Vector256.Create(lp[((long)bi * h + head) * t + i]);
                        for (int jv = 0; jv < nv; jv++) Probability(Vector256.Load(p + jv * W) - vl).Store(p + jv * W);   // P_ij
                        // dP_ij = dO_i . v_j
                        for (int jv = 0; jv < nv; jv++) Vector256<float>.Zero.Store(dp + jv * W);
                        for (int d = 0; d < hd; d++) Axpy(gi[d], vt + d * tp, dp, nv);
                        var vd = Vector256.Create(delta);
                        for (int jv = 0; jv < nv; jv++)
                        {
                            var pv = Vector256.Load(p + jv * W);
                            (pv * (Vector256.Load(dp + jv * W) - vd)).Store(ds + jv * W);   // dS_ij = P_ij (dP_ij - D_i)
                        }
                        for (int d = 0; d < hd; d++)
                        {
                            dqrow[d] = Dot(ds, kt + d * tp, nv) * scale;                 // dq_i = scale · Σ_j dS_ij k_j
                            Axpy(qi[d], ds, dkt + d * tp, nv);                          // dk_j += dS_ij · (scale · q_i)
                            Axpy(gi[d], p, dvt + d * tp, nv);                           // dv_j += P_ij · dO_i
                        }
                    }
                }
                for (int j = 0; j < t; j++)
                {
                    long krow = (((long)bi * t + j) * kv + g) * hd;
                    for (int d = 0; d < hd; d++) { long at = At(d, j, hd, tp); dkp[krow + d] = dkt[at]; dvp[krow + d] = dvt[at]; }
                }
            }
        });
        GC.KeepAlive(q); GC.KeepAlive(k); GC.KeepAlive(v); GC.KeepAlive(o); GC.KeepAlive(lse); GC.KeepAlive(dO);
        return (dq, dk, dv);
    }

    /// <summary>s_j = qi · k_j for the first <paramref name="nv"/> vectors of keys; keys after <paramref name="last"/> get -inf.</summary>
    /// <returns>max over keys 0..last</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe float Scores(float* qi, float* kt, float* s, int hd, int tp, int nv, int last)
    {
        for (int jv = 0; jv < nv; jv++)
        {
            var acc = Vector256<float>.Zero;
            for (int d = 0; d < hd; d++) acc = Vector256.FusedMultiplyAdd(Vector256.Create(qi[d]), Vector256.Load(kt + d * tp + jv * W), acc);
            acc.Store(s + jv * W);
        }
        for (int j = last + 1; j < nv * W; j++) s[j] = float.NegativeInfinity;
        var vmax = Vector256.Create(float.NegativeInfinity);
        for (int jv = 0; jv < nv; jv++) vmax = Max(vmax, Vector256.Load(s + jv * W));
        return HorizontalMax(vmax);
    }

    /// <summary><see cref="Scores"/> for 8-wide heads: the query's eight broadcasts held in registers, the dot products as two
    /// independent chains, the maximum taken as the scores are made (masking only in the last vector).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe float Scores8(float* qi, float* kt, float* s, int tp, int nv, int last)
    {
        Vector256<float> q0 = Vector256.Create(qi[0]), q1 = Vector256.Create(qi[1]), q2 = Vector256.Create(qi[2]), q3 = Vector256.Create(qi[3]),
            q4 = Vector256.Create(qi[4]), q5 = Vector256.Create(qi[5]), q6 = Vector256.Create(qi[6]), q7 = Vector256.Create(qi[7]);
        var m0 = Vector256.Create(float.NegativeInfinity); var m1 = m0;
        int end = nv * W;
        for (int o8 = 0; o8 < end; o8 += W)
        {
            float* kb = kt + o8 * 8;                                                           // this block's 8 x 8 keys (see At)
            var a = q0 * Vector256.Load(kb); var b = q1 * Vector256.Load(kb + 8);
            a = Vector256.FusedMultiplyAdd(q2, Vector256.Load(kb + 16), a); b = Vector256.FusedMultiplyAdd(q3, Vector256.Load(kb + 24), b);
            a = Vector256.FusedMultiplyAdd(q4, Vector256.Load(kb + 32), a); b = Vector256.FusedMultiplyAdd(q5, Vector256.Load(kb + 40), b);
            a = Vector256.FusedMultiplyAdd(q6, Vector256.Load(kb + 48), a); b = Vector256.FusedMultiplyAdd(q7, Vector256.Load(kb + 56), b);
            var sc = a + b;
            if (o8 + W > last + 1) sc = Vector256.ConditionalSelect(Upto(o8, last), sc, Vector256.Create(float.NegativeInfinity));   // keys after `last`
            sc.Store(s + o8);
            if ((o8 & W) == 0) m0 = Max(m0, sc); else m1 = Max(m1, sc);
        }
        return HorizontalMax(Max(m0, m1));
    }

    /// <summary>Lanes of keys o8..o8+7 that are at most <paramref name="last"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Upto(int o8, int last) =>
        Vector256.LessThanOrEqual(Vector256.Create(0f, 1, 2, 3, 4, 5, 6, 7), Vector256.Create((float)(last - o8)));

    /// <summary>Lane-wise maximum as one vmaxps where AVX is there (scores are never NaN here; <c>Vector256.Max</c> adds
    /// IEEE NaN and signed-zero handling, three dependent instructions per call).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Avx.IsSupported ? Avx.Max(a, b) : Vector256.Max(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float HorizontalMax(Vector256<float> v)
    {
        if (!Avx.IsSupported)
        {
            float max = float.NegativeInfinity;
            for (int l = 0; l < W; l++) max = MathF.Max(max, v.GetElement(l));
            return max;
        }
        var m = Avx.Max(v, Avx.Permute2x128(v, v, 1));
        m = Avx.Max(m, Avx.Permute(m, 0b01_00_11_10));
        m = Avx.Max(m, Avx.Permute(m, 0b10_11_00_01));
        return m.ToScalar();
    }

    /// <summary>The eight lane sums of a0..a7 as one vector, [Σa0, Σa1, ..., Σa7].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Sums8(Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3,
        Vector256<float> a4, Vector256<float> a5, Vector256<float> a6, Vector256<float> a7)
    {
        if (!Avx.IsSupported)
            return Vector256.Create(Vector256.Sum(a0), Vector256.Sum(a1), Vector256.Sum(a2), Vector256.Sum(a3),
                Vector256.Sum(a4), Vector256.Sum(a5), Vector256.Sum(a6), Vector256.Sum(a7));
        var h0123 = Avx.HorizontalAdd(Avx.HorizontalAdd(a0, a1), Avx.HorizontalAdd(a2, a3));   // [a0..a3 low halves | a0..a3 high halves]
        var h4567 = Avx.HorizontalAdd(Avx.HorizontalAdd(a4, a5), Avx.HorizontalAdd(a6, a7));
        return Avx.Permute2x128(h0123, h4567, 0x20) + Avx.Permute2x128(h0123, h4567, 0x31);
    }


    /// <summary>p_j = exp(s_j - max) in place, o = Σ_j p_j v_j / Σ_j p_j; returns Σ_j p_j.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe float Weighted(float* s, float* vt, int hd, int tp, int nv, float max, float* o)
    {
        var vmax = Vector256.Create(max);
        var vsum = Vector256<float>.Zero;
        for (int jv = 0; jv < nv; jv++)
        {
            var p = Probability(Vector256.Load(s + jv * W) - vmax);   // masked keys: 0
            p.Store(s + jv * W);
            vsum += p;
        }
        float sum = Vector256.Sum(vsum), inv = 1f / sum;
        for (int d = 0; d < hd; d++) o[d] = Dot(s, vt + d * tp, nv) * inv;
        return sum;
    }

    /// <summary><see cref="Weighted"/> for 8-wide heads: one pass, the eight output sums held in registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe float Weighted8(float* s, float* vt, int tp, int nv, float max, float* o)
    {
        var vmax = Vector256.Create(max);
        Vector256<float> vsum = default, a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        for (int o8 = 0; o8 < nv * W; o8 += W)
        {
            float* vb = vt + o8 * 8;                                  // this block's 8 x 8 values (see At)
            var p = Probability(Vector256.Load(s + o8) - vmax);               // masked keys: 0
            vsum += p;
            a0 = Vector256.FusedMultiplyAdd(p, Vector256.Load(vb), a0);
            a1 = Vector256.FusedMultiplyAdd(p, Vector256.Load(vb + 8), a1);
            a2 = Vector256.FusedMultiplyAdd(p, Vector256.Load(vb + 16), a2);
            a3 = Vector256.FusedMultiplyAdd(p, Vector256.Load(vb + 24), a3);
            a4 = Vector256.FusedMultiplyAdd(p, Vector256.Load(vb + 32), a4);
            a5 = Vector256.FusedMultiplyAdd(p, Vector256.Load(vb + 40), a5);
            a6 = Vector256.FusedMultiplyAdd(p, Vector256.Load(vb + 48), a6);
            a7 = Vector256.FusedMultiplyAdd(p, Vector256.Load(vb + 56), a7);
        }
        float sum = Vector256.Sum(vsum);
        (Sums8(a0, a1, a2, a3, a4, a5, a6, a7) * Vector256.Create(1f / sum)).Store(o);
        return sum;
    }

    /// <summary>The backward of one query row for 8-wide heads in one pass over its keys: P and dS recomputed per 8 keys and
    /// used at once (dq summed in registers, dK and dV accumulated in place).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Backward8(float* qi, float* gi, float* kt, float* vt, float* dkt, float* dvt, int tp, int nv, int last,
        float lse, float delta, float scale, float* dq)
    {
        Vector256<float> q0 = Vector256.Create(qi[0]), q1 = Vector256.Create(qi[1]), q2 = Vector256.Create(qi[2]), q3 = Vector256.Create(qi[3]),
            q4 = Vector256.Create(qi[4]), q5 = Vector256.Create(qi[5]), q6 = Vector256.Create(qi[6]), q7 = Vector256.Create(qi[7]);
        Vector256<float> g0 = Vector256.Create(gi[0]), g1 = Vector256.Create(gi[1]), g2 = Vector256.Create(gi[2]), g3 = Vector256.Create(gi[3]),
            g4 = Vector256.Create(gi[4]), g5 = Vector256.Create(gi[5]), g6 = Vector256.Create(gi[6]), g7 = Vector256.Create(gi[7]);
        Vector256<float> d0 = default, d1 = default, d2 = default, d3 = default, d4 = default, d5 = default, d6 = default, d7 = default;
        var vl = Vector256.Create(lse); var vd = Vector256.Create(delta);
        for (int o8 = 0; o8 < nv * W; o8 += W)
        {
            // This block's 8 x 8 keys, values and their gradients (see At): one base each, the dimensions at fixed offsets.
            float* kb = kt + o8 * 8, vb = vt + o8 * 8, dkb = dkt + o8 * 8, dvb = dvt + o8 * 8;
            var sa = q0 * Vector256.Load(kb); var sb = q1 * Vector256.Load(kb + 8);
            sa = Vector256.FusedMultiplyAdd(q2, Vector256.Load(kb + 16), sa); sb = Vector256.FusedMultiplyAdd(q3, Vector256.Load(kb + 24), sb);
            sa = Vector256.FusedMultiplyAdd(q4, Vector256.Load(kb + 32), sa); sb = Vector256.FusedMultiplyAdd(q5, Vector256.Load(kb + 40), sb);
            sa = Vector256.FusedMultiplyAdd(q6, Vector256.Load(kb + 48), sa); sb = Vector256.FusedMultiplyAdd(q7, Vector256.Load(kb + 56), sb);
            var p = Probability(sa + sb - vl);                                                    // P_ij
            if (o8 + W > last + 1) p = Vector256.ConditionalSelect(Upto(o8, last), p, Vector256<float>.Zero);
            var pa = g0 * Vector256.Load(vb); var pb = g1 * Vector256.Load(vb + 8);              // dP_ij = dO_i . v_j
            pa = Vector256.FusedMultiplyAdd(g2, Vector256.Load(vb + 16), pa); pb = Vector256.FusedMultiplyAdd(g3, Vector256.Load(vb + 24), pb);
            pa = Vector256.FusedMultiplyAdd(g4, Vector256.Load(vb + 32), pa); pb = Vector256.FusedMultiplyAdd(g5, Vector256.Load(vb + 40), pb);
            pa = Vector256.FusedMultiplyAdd(g6, Vector256.Load(vb + 48), pa); pb = Vector256.FusedMultiplyAdd(g7, Vector256.Load(vb + 56), pb);
            var ds = p * (pa + pb - vd);                                                          // dS_ij
            d0 = Vector256.FusedMultiplyAdd(ds, Vector256.Load(kb), d0); d1 = Vector256.FusedMultiplyAdd(ds, Vector256.Load(kb + 8), d1);
            d2 = Vector256.FusedMultiplyAdd(ds, Vector256.Load(kb + 16), d2); d3 = Vector256.FusedMultiplyAdd(ds, Vector256.Load(kb + 24), d3);
            d4 = Vector256.FusedMultiplyAdd(ds, Vector256.Load(kb + 32), d4); d5 = Vector256.FusedMultiplyAdd(ds, Vector256.Load(kb + 40), d5);
            d6 = Vector256.FusedMultiplyAdd(ds, Vector256.Load(kb + 48), d6); d7 = Vector256.FusedMultiplyAdd(ds, Vector256.Load(kb + 56), d7);
            // dk_j += dS_ij · (scale · q_i), dv_j += P_ij · dO_i, one row of each per dimension (the broadcasts are the registers above)
            Accumulate(dkb, dvb, 0, q0, g0, ds, p); Accumulate(dkb, dvb, 8, q1, g1, ds, p);
            Accumulate(dkb, dvb, 16, q2, g2, ds, p); Accumulate(dkb, dvb, 24, q3, g3, ds, p);
            Accumulate(dkb, dvb, 32, q4, g4, ds, p); Accumulate(dkb, dvb, 40, q5, g5, ds, p);
            Accumulate(dkb, dvb, 48, q6, g6, ds, p); Accumulate(dkb, dvb, 56, q7, g7, ds, p);
        }
        (Sums8(d0, d1, d2, d3, d4, d5, d6, d7) * Vector256.Create(scale)).Store(dq);
    }


    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Accumulate(float* dk, float* dv, int offset, Vector256<float> q, Vector256<float> g, Vector256<float> ds, Vector256<float> p)
    {
        Vector256.FusedMultiplyAdd(q, ds, Vector256.Load(dk + offset)).Store(dk + offset);
        Vector256.FusedMultiplyAdd(g, p, Vector256.Load(dv + offset)).Store(dv + offset);
    }

    /// <summary>e^x for a score x relative to its row's maximum (forward) or log-sum-exp (backward), with every result below 2^-64
    /// set to exactly 0. Such a weight changes no output or gradient by more than T · 2^-64 of its scale, far below float32 rounding
    /// (2^-24), but its products (P · v forward; dS = P · (dP - D), dS · q, P · dO backward) would be subnormal floats, which x86 CPUs
    /// compute through microcode assists about a hundred times slower: peaked attention rows, common in a trained LLM, otherwise
    /// make the backward up to ten times slower.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Probability(Vector256<float> x) =>
        Vector256.AndNot(Exp(x), Vector256.LessThan(x, Vector256.Create(ProbabilityFloor)).AsSingle());

    /// <summary>ln 2^-64: scores this far below the row's maximum or log-sum-exp weigh exactly 0 (see <see cref="Probability"/>).</summary>
    internal const float ProbabilityFloor = -44.3614196f;

    /// <summary>e^x for float32 lanes, relative error below 4e-7, about 3 ulp (a degree-6 polynomial after range reduction by ln 2); below
    /// -87.3 (e.g. the -inf of masked keys) exactly 0. .NET's <c>Vector256.Exp</c> computes float lanes in double, twice the work.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Exp(Vector256<float> x)
    {
        var tiny = Vector256.LessThan(x, Vector256.Create(-87.3f));
        x = Vector256.Min(Vector256.Max(x, Vector256.Create(-87.3f)), Vector256.Create(88f));
        Vector256<float> n; Vector256<int> ni;
        if (Avx.IsSupported)
        {
            ni = Avx.ConvertToVector256Int32(x * Vector256.Create(1.44269504f));                    // x / ln 2, to the nearest integer (ties to even)
            n = Avx.ConvertToVector256Single(ni);
        }
        else
        {
            n = Vector256.Round(x * Vector256.Create(1.44269504f));
            ni = Vector256.ConvertToInt32(n);
        }
        var r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-0.693145752f), x);                  // x - n ln 2 (two-part ln 2)
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-1.42860677e-6f), r);                    // |r| <= ln 2 / 2
        var p = Vector256.Create(1f / 720);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1f / 120));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1f / 24));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1f / 6));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(0.5f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1f));                                 // e^r
        var scale = Vector256.ShiftLeft(ni + Vector256.Create(127), 23).AsSingle();                // 2^n
        return Vector256.AndNot(p * scale, tiny.AsSingle());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe float Dot(float* a, float* b, int nv)
    {
        var acc = Vector256<float>.Zero;
        for (int jv = 0; jv < nv; jv++) acc = Vector256.FusedMultiplyAdd(Vector256.Load(a + jv * W), Vector256.Load(b + jv * W), acc);
        return Vector256.Sum(acc);
    }

    /// <summary>y += alpha · x over <paramref name="nv"/> vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Axpy(float alpha, float* x, float* y, int nv)
    {
        var va = Vector256.Create(alpha);
        for (int jv = 0; jv < nv; jv++) Vector256.FusedMultiplyAdd(va, Vector256.Load(x + jv * W), Vector256.Load(y + jv * W)).Store(y + jv * W);
    }

    /// <summary>Keys (or values) of one row and key-value head, [T] x [hd] strided, into the kernel's layout (zeros after T):
    /// [hd][tp] in general; for 8-wide heads blocks of 8 keys x 8 dimensions, [tp / 8][8][8] (see <see cref="At"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Transpose(float* src, float* dst, int bi, int g, int t, int kv, int hd, int tp)
    {
        if (hd == 8)
        {
            new Span<float>(dst + (long)t / W * W * 8, (tp - t / W * W) * 8).Clear();   // the last block's keys after t are zeros
            for (int j = 0; j < t; j++)
            {
                float* row = src + (((long)bi * t + j) * kv + g) * 8, at = dst + At(0, j, 8, tp);
                at[0] = row[0]; at[8] = row[1]; at[16] = row[2]; at[24] = row[3]; at[32] = row[4]; at[40] = row[5]; at[48] = row[6]; at[56] = row[7];
            }
            return;
        }
        for (int j = 0; j < t; j++)
        {
            float* row = src + (((long)bi * t + j) * kv + g) * hd;
            for (int d = 0; d < hd; d++) dst[At(d, j, hd, tp)] = row[d];
        }
        for (int d = 0; d < hd; d++) for (int j = t; j < tp; j++) dst[At(d, j, hd, tp)] = 0;
    }

    /// <summary>Where dimension <paramref name="d"/> of key <paramref name="j"/> sits in the kernel's layout: for 8-wide heads each
    /// block of 8 keys holds its 8 dimensions as 8 consecutive vectors (one base address per block, the dimensions at fixed offsets);
    /// wider heads keep one row of <paramref name="tp"/> keys per dimension.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long At(int d, int j, int hd, int tp) => hd == 8 ? (long)(j & ~(W - 1)) * 8 + d * W + (j & (W - 1)) : (long)d * tp + j;

    /// <summary>The first 64-byte boundary at or after <paramref name="p"/> (buffers leave 16 floats of room for it).</summary>
    private static unsafe float* Align(float* p) => (float*)(((nint)p + 63) & ~(nint)63);

    // 512-bit vectors for 8-wide heads: keys and values in blocks of 16 keys x 8 dimensions, [tp / 16][8][16]; otherwise the
    // same passes as the 256-bit ones above (Scores8, Weighted8, Backward8), 16 keys at a time.

    private const int W16 = 16;   // floats per Vector512

    /// <summary><see cref="Forward"/> for 8-wide heads with 512-bit vectors.</summary>
    private static unsafe (Tensor output, Tensor? lse) Forward512(Tensor q, Tensor k, Tensor v, bool saveLse)
    {
        int b = (int)q.shape[0], t = (int)q.shape[1], h = (int)q.shape[2], kv = (int)k.shape[2];
        var output = torch.empty(q.shape, ScalarType.Float32);
        var lse = saveLse ? torch.empty(new long[] { b, h, t }, ScalarType.Float32) : null;
        if (t == 0 || b == 0) return (output, lse);
        float* qp = Floats(q), kp = Floats(k), vp = Floats(v), op = Floats(output), lp = lse is null ? null : Floats(lse);
        int rep = h / kv, tp = (t + W16 - 1) / W16 * W16;
        float scale = 1f / MathF.Sqrt(8);
        Parallel.For(0, b * kv, Parallelism(), [MethodImpl(MethodImplOptions.AggressiveOptimization)] (item) =>
        {
            int bi = item / kv, g = item % kv;
            var buffer = new float[2 * 8 * tp + tp + 8 + W16];                   // kt, vt, s, qi and room to align
            fixed (float* buf0 = buffer)
            {
                float* kt = Align(buf0), vt = kt + 8 * tp, s = vt + 8 * tp, qi = s + tp;
                Transpose16(kp, kt, bi, g, t, kv, tp);
                Transpose16(vp, vt, bi, g, t, kv, tp);
                for (int r = 0; r < rep; r++)
                {
                    int head = g * rep + r;
                    for (int i = 0; i < t; i++)
                    {
                        float* qrow = qp + (((long)bi * t + i) * h + head) * 8;
                        for (int d = 0; d < 8; d++) qi[d] = qrow[d] * scale;
                        int end = (i / W16 + 1) * W16;                           // keys 0..i in whole blocks
                        float max = Scores16(qi, kt, s, end, i);
                        float sum = Weighted16(s, vt, end, max, op + (((long)bi * t + i) * h + head) * 8);
                        if (lp is not null) lp[((long)bi * h + head) * t + i] = max + MathF.Log(sum);
                    }
                }
            }
        });
        GC.KeepAlive(q); GC.KeepAlive(k); GC.KeepAlive(v);
        return (output, lse);
    }

    /// <summary><see cref="Backward"/> for 8-wide heads with 512-bit vectors.</summary>
    private static unsafe (Tensor dq, Tensor dk, Tensor dv) Backward512(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dO)
    {
        int b = (int)q.shape[0], t = (int)q.shape[1], h = (int)q.shape[2], kv = (int)k.shape[2];
        var dq = torch.empty(q.shape, ScalarType.Float32);
        var dk = torch.empty(k.shape, ScalarType.Float32);
        var dv = torch.empty(v.shape, ScalarType.Float32);
        if (t == 0 || b == 0) return (dq, dk, dv);
        float* qp = Floats(q), kp = Floats(k), vp = Floats(v), op = Floats(o), lp = Floats(lse), gp = Floats(dO);
        float* dqp = Floats(dq), dkp = Floats(dk), dvp = Floats(dv);
        int rep = h / kv, tp = (t + W16 - 1) / W16 * W16;
        float scale = 1f / MathF.Sqrt(8);
        Parallel.For(0, b * kv, Parallelism(), [MethodImpl(MethodImplOptions.AggressiveOptimization)] (item) =>
        {
            int bi = item / kv, g = item % kv;
            var buffer = new float[4 * 8 * tp + 16 + W16];
            Array.Clear(buffer);
            fixed (float* buf0 = buffer)
            {
                float* kt = Align(buf0), vt = kt + 8 * tp, dkt = vt + 8 * tp, dvt = dkt + 8 * tp, qi = dvt + 8 * tp, gi = qi + 8;
                Transpose16(kp, kt, bi, g, t, kv, tp);
                Transpose16(vp, vt, bi, g, t, kv, tp);
                for (int r = 0; r < rep; r++)
                {
                    int head = g * rep + r;
                    for (int i = 0; i < t; i++)
                    {
                        long row = (((long)bi * t + i) * h + head) * 8;
                        float delta = 0;                                          // D_i = dO_i . O_i
                        for (int d = 0; d < 8; d++) { qi[d] = qp[row + d] * scale; gi[d] = gp[row + d]; delta += gi[d] * op[row + d]; }
                        Backward16(qi, gi, kt, vt, dkt, dvt, (i / W16 + 1) * W16, i, lp[((long)bi * h + head) * t + i], delta, scale, dqp + row);
                    }
                }
                for (int j = 0; j < t; j++)
                {
                    long krow = (((long)bi * t + j) * kv + g) * 8, at = (long)(j & ~(W16 - 1)) * 8 + (j & (W16 - 1));
                    for (int d = 0; d < 8; d++) { dkp[krow + d] = dkt[at + d * W16]; dvp[krow + d] = dvt[at + d * W16]; }
                }
            }
        });
        GC.KeepAlive(q); GC.KeepAlive(k); GC.KeepAlive(v); GC.KeepAlive(o); GC.KeepAlive(lse); GC.KeepAlive(dO);
        return (dq, dk, dv);
    }

    /// <summary>Keys (or values) of one row and key-value head into blocks of 16 keys x 8 dimensions (zeros after T).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Transpose16(float* src, float* dst, int bi, int g, int t, int kv, int tp)
    {
        new Span<float>(dst + (long)t / W16 * W16 * 8, (tp - t / W16 * W16) * 8).Clear();   // the last block's keys after t are zeros
        for (int j = 0; j < t; j++)
        {
            float* row = src + (((long)bi * t + j) * kv + g) * 8, at = dst + (long)(j & ~(W16 - 1)) * 8 + (j & (W16 - 1));
            at[0] = row[0]; at[16] = row[1]; at[32] = row[2]; at[48] = row[3]; at[64] = row[4]; at[80] = row[5]; at[96] = row[6]; at[112] = row[7];
        }
    }

    /// <summary><see cref="Scores8"/> over blocks of 16 keys.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe float Scores16(float* qi, float* kt, float* s, int end, int last)
    {
        Vector512<float> q0 = Vector512.Create(qi[0]), q1 = Vector512.Create(qi[1]), q2 = Vector512.Create(qi[2]), q3 = Vector512.Create(qi[3]),
            q4 = Vector512.Create(qi[4]), q5 = Vector512.Create(qi[5]), q6 = Vector512.Create(qi[6]), q7 = Vector512.Create(qi[7]);
        var m = Vector512.Create(float.NegativeInfinity);
        for (int o16 = 0; o16 < end; o16 += W16)
        {
            float* kb = kt + o16 * 8;
            var a = q0 * Vector512.Load(kb); var b = q1 * Vector512.Load(kb + 16);
            a = Vector512.FusedMultiplyAdd(q2, Vector512.Load(kb + 32), a); b = Vector512.FusedMultiplyAdd(q3, Vector512.Load(kb + 48), b);
            a = Vector512.FusedMultiplyAdd(q4, Vector512.Load(kb + 64), a); b = Vector512.FusedMultiplyAdd(q5, Vector512.Load(kb + 80), b);
            a = Vector512.FusedMultiplyAdd(q6, Vector512.Load(kb + 96), a); b = Vector512.FusedMultiplyAdd(q7, Vector512.Load(kb + 112), b);
            var sc = a + b;
            if (o16 + W16 > last + 1) sc = Vector512.ConditionalSelect(Upto16(o16, last), sc, Vector512.Create(float.NegativeInfinity));   // keys after `last`
            sc.Store(s + o16);
            m = Avx512F.Max(m, sc);
        }
        return HorizontalMax(Max(m.GetLower(), m.GetUpper()));
    }

    /// <summary><see cref="Weighted8"/> over blocks of 16 keys.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe float Weighted16(float* s, float* vt, int end, float max, float* o)
    {
        var vmax = Vector512.Create(max);
        Vector512<float> vsum = default, a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        for (int o16 = 0; o16 < end; o16 += W16)
        {
            float* vb = vt + o16 * 8;
            var p = Probability(Vector512.Load(s + o16) - vmax);              // masked keys: 0
            vsum += p;
            a0 = Vector512.FusedMultiplyAdd(p, Vector512.Load(vb), a0);
            a1 = Vector512.FusedMultiplyAdd(p, Vector512.Load(vb + 16), a1);
            a2 = Vector512.FusedMultiplyAdd(p, Vector512.Load(vb + 32), a2);
            a3 = Vector512.FusedMultiplyAdd(p, Vector512.Load(vb + 48), a3);
            a4 = Vector512.FusedMultiplyAdd(p, Vector512.Load(vb + 64), a4);
            a5 = Vector512.FusedMultiplyAdd(p, Vector512.Load(vb + 80), a5);
            a6 = Vector512.FusedMultiplyAdd(p, Vector512.Load(vb + 96), a6);
            a7 = Vector512.FusedMultiplyAdd(p, Vector512.Load(vb + 112), a7);
        }
        float sum = Vector512.Sum(vsum);
        (Sums8(Half(a0), Half(a1), Half(a2), Half(a3), Half(a4), Half(a5), Half(a6), Half(a7)) * Vector256.Create(1f / sum)).Store(o);
        return sum;
    }

    /// <summary><see cref="Backward8"/> over blocks of 16 keys (the block's keys loaded once, for the scores and for dq).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Backward16(float* qi, float* gi, float* kt, float* vt, float* dkt, float* dvt, int end, int last,
        float lse, float delta, float scale, float* dq)
    {
        Vector512<float> q0 = Vector512.Create(qi[0]), q1 = Vector512.Create(qi[1]), q2 = Vector512.Create(qi[2]), q3 = Vector512.Create(qi[3]),
            q4 = Vector512.Create(qi[4]), q5 = Vector512.Create(qi[5]), q6 = Vector512.Create(qi[6]), q7 = Vector512.Create(qi[7]);
        Vector512<float> g0 = Vector512.Create(gi[0]), g1 = Vector512.Create(gi[1]), g2 = Vector512.Create(gi[2]), g3 = Vector512.Create(gi[3]),
            g4 = Vector512.Create(gi[4]), g5 = Vector512.Create(gi[5]), g6 = Vector512.Create(gi[6]), g7 = Vector512.Create(gi[7]);
        Vector512<float> d0 = default, d1 = default, d2 = default, d3 = default, d4 = default, d5 = default, d6 = default, d7 = default;
        var vl = Vector512.Create(lse); var vd = Vector512.Create(delta);
        for (int o16 = 0; o16 < end; o16 += W16)
        {
            float* kb = kt + o16 * 8, vb = vt + o16 * 8, dkb = dkt + o16 * 8, dvb = dvt + o16 * 8;
            var k0 = Vector512.Load(kb); var k1 = Vector512.Load(kb + 16); var k2 = Vector512.Load(kb + 32); var k3 = Vector512.Load(kb + 48);
            var k4 = Vector512.Load(kb + 64); var k5 = Vector512.Load(kb + 80); var k6 = Vector512.Load(kb + 96); var k7 = Vector512.Load(kb + 112);
            var sa = q0 * k0; var sb = q1 * k1;
            sa = Vector512.FusedMultiplyAdd(q2, k2, sa); sb = Vector512.FusedMultiplyAdd(q3, k3, sb);
            sa = Vector512.FusedMultiplyAdd(q4, k4, sa); sb = Vector512.FusedMultiplyAdd(q5, k5, sb);
            sa = Vector512.FusedMultiplyAdd(q6, k6, sa); sb = Vector512.FusedMultiplyAdd(q7, k7, sb);
            var p = Probability(sa + sb - vl);                                                    // P_ij
            if (o16 + W16 > last + 1) p = Vector512.ConditionalSelect(Upto16(o16, last), p, Vector512<float>.Zero);
            var pa = g0 * Vector512.Load(vb); var pb = g1 * Vector512.Load(vb + 16);             // dP_ij = dO_i . v_j
            pa = Vector512.FusedMultiplyAdd(g2, Vector512.Load(vb + 32), pa); pb = Vector512.FusedMultiplyAdd(g3, Vector512.Load(vb + 48), pb);
            pa = Vector512.FusedMultiplyAdd(g4, Vector512.Load(vb + 64), pa); pb = Vector512.FusedMultiplyAdd(g5, Vector512.Load(vb + 80), pb);
            pa = Vector512.FusedMultiplyAdd(g6, Vector512.Load(vb + 96), pa); pb = Vector512.FusedMultiplyAdd(g7, Vector512.Load(vb + 112), pb);
            var ds = p * (pa + pb - vd);                                                          // dS_ij
            d0 = Vector512.FusedMultiplyAdd(ds, k0, d0); d1 = Vector512.FusedMultiplyAdd(ds, k1, d1);
            d2 = Vector512.FusedMultiplyAdd(ds, k2, d2); d3 = Vector512.FusedMultiplyAdd(ds, k3, d3);
            d4 = Vector512.FusedMultiplyAdd(ds, k4, d4); d5 = Vector512.FusedMultiplyAdd(ds, k5, d5);
            d6 = Vector512.FusedMultiplyAdd(ds, k6, d6); d7 = Vector512.FusedMultiplyAdd(ds, k7, d7);
            Accumulate16(dkb, dvb, 0, q0, g0, ds, p); Accumulate16(dkb, dvb, 16, q1, g1, ds, p);
            Accumulate16(dkb, dvb, 32, q2, g2, ds, p); Accumulate16(dkb, dvb, 48, q3, g3, ds, p);
            Accumulate16(dkb, dvb, 64, q4, g4, ds, p); Accumulate16(dkb, dvb, 80, q5, g5, ds, p);
            Accumulate16(dkb, dvb, 96, q6, g6, ds, p); Accumulate16(dkb, dvb, 112, q7, g7, ds, p);
        }
        (Sums8(Half(d0), Half(d1), Half(d2), Half(d3), Half(d4), Half(d5), Half(d6), Half(d7)) * Vector256.Create(scale)).Store(dq);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Accumulate16(float* dk, float* dv, int offset, Vector512<float> q, Vector512<float> g, Vector512<float> ds, Vector512<float> p)
    {
        Vector512.FusedMultiplyAdd(q, ds, Vector512.Load(dk + offset)).Store(dk + offset);
        Vector512.FusedMultiplyAdd(g, p, Vector512.Load(dv + offset)).Store(dv + offset);
    }

    /// <summary>The two 256-bit halves of <paramref name="a"/> added.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Half(Vector512<float> a) => a.GetLower() + a.GetUpper();

    /// <summary>Lanes of keys o16..o16+15 that are at most <paramref name="last"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Upto16(int o16, int last) =>
        Vector512.LessThanOrEqual(Vector512.Create(0f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), Vector512.Create((float)(last - o16)));

    /// <summary><see cref="Probability(Vector256{float})"/> for 16 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Probability(Vector512<float> x) =>
        Vector512.AndNot(Exp(x), Vector512.LessThan(x, Vector512.Create(ProbabilityFloor)).AsSingle());

    /// <summary><see cref="Exp(Vector256{float})"/> for 16 lanes: the same range reduction, polynomial and rounding.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Exp(Vector512<float> x)
    {
        var tiny = Vector512.LessThan(x, Vector512.Create(-87.3f));
        x = Vector512.Min(Vector512.Max(x, Vector512.Create(-87.3f)), Vector512.Create(88f));
        var ni = Avx512F.ConvertToVector512Int32(x * Vector512.Create(1.44269504f));             // x / ln 2, to the nearest integer (ties to even)
        var n = Avx512F.ConvertToVector512Single(ni);
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693145752f), x);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-1.42860677e-6f), r);
        var p = Vector512.Create(1f / 720);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 120));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 24));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 6));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(0.5f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f));
        var scale = Vector512.ShiftLeft(ni + Vector512.Create(127), 23).AsSingle();
        return Vector512.AndNot(p * scale, tiny.AsSingle());
    }


}
