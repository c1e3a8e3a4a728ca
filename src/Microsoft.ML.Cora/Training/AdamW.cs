using Microsoft.ML.Cora.Runtime;
using System.Runtime.Intrinsics;
using TorchSharp;
using static Microsoft.ML.Cora.Runtime.HostTensor;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Training;

/// <summary>
/// AdamW (decoupled weight decay, bias-corrected moments) keeping exactly two moment tensors per parameter. TorchSharp 0.107's
/// AdamW also allocates an AMSGrad maximum for every parameter even when AMSGrad is off: for CoRA's 42M-parameter generator that
/// is 168 MB more of the 1 GiB a CPU run needs. State saves and loads as named tensors (for resumable checkpoints).
/// <para>On the CPU in float32 the update is one fused SIMD pass per parameter (<see cref="Fused"/>): it reads the weight,
/// gradient and both moments once and writes weight and moments once, where the same update as libtorch operations makes nine
/// passes and a temporary the size of the parameter (for the 42M-parameter generator ~3.7 GB of memory traffic a step against
/// ~1.2 GB). The same arithmetic either way, up to float32 rounding (tested).</para>
/// <para>Elsewhere (CUDA, other dtypes) each group's parameters live in one buffer (<see cref="SingleBuffer"/>): at the first step
/// the parameters that have a gradient become views of one flat weight buffer, their moments views of two flat moment buffers; the
/// finite check and the update each gather the gradients with one concatenation. The update is then nine operations per group
/// instead of nine per parameter, and the finite check reads one flag for everything instead of one per tensor: for CoRA with its
/// paper-size generator (201 tensors with gradients) 33 operations and one host read a step instead of 2,199 and 202, each
/// operation at least one kernel launch on a GPU (counted with tools/libtorch-calls.sh).</para>
/// </summary>
internal sealed class AdamW : IDisposable
{
    public sealed record Group(IReadOnlyList<Parameter> Parameters, double WeightDecay);

    private readonly List<(Parameter p, double decay, Tensor m, Tensor v)> _state = new();
    private readonly List<(int first, int count)> _groups = new();      // each group's range in _state
    private readonly double _beta1, _beta2, _eps;
    private List<FlatGroup>? _flat;                                      // built at the first step (see SingleBuffer)
    private bool[] _inFlat = Array.Empty<bool>();                        // _state[i] is a view into a flat group

    /// <summary>A group's parameters (those at <see cref="Members"/> in the state) as views of one weight buffer, with their moments.</summary>
    private sealed record FlatGroup(int[] Members, double Decay, Tensor P, Tensor M, Tensor V);

    /// <summary>Optimiser steps taken (for bias correction).</summary>
    public long Steps { get; private set; }
    /// <summary>Learning rate of the next step (set by the schedule).</summary>
    public double LearningRate { get; set; }
    /// <summary>One fused pass per float32 CPU parameter (default); false: libtorch operations (other devices and dtypes always).</summary>
    public bool Fused { get; set; } = true;
    /// <summary>Each group's parameters in one buffer, updated as one tensor (see the class remarks). null (the default): wherever
    /// the fused per-parameter pass does not apply (CUDA, dtypes other than float32, or <see cref="Fused"/> off); true or false
    /// force it. Read at the first step; the arithmetic is the same either way, up to float32 rounding (tested).</summary>
    public bool? SingleBuffer { get; set; }
    /// <summary>How many parameters are views of a group's single buffer (0 before the first gradient arrives, or when none is).</summary>
    public int BufferedParameters => _flat?.Sum(f => f.Members.Length) ?? 0;

    public AdamW(IEnumerable<Group> groups, double learningRate, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
    {
        LearningRate = learningRate; _beta1 = beta1; _beta2 = beta2; _eps = eps;
        foreach (var g in groups)
        {
            _groups.Add((_state.Count, g.Parameters.Count));
            foreach (var p in g.Parameters)
                _state.Add((p, g.WeightDecay, torch.zeros_like(p), torch.zeros_like(p)));
        }
    }

    /// <summary>Releases every gradient (as PyTorch's <c>zero_grad(set_to_none=True)</c>): the next backward writes each gradient
    /// once instead of adding it to a buffer of zeros, which saves two passes over every weight-sized buffer a step (for the
    /// 42M-parameter generator ~0.7 GB of memory traffic). Gradients accumulated over several backward calls add up as before.</summary>
    public void ZeroGrad()
    {
        foreach (var (p, _, _, _) in _state) p.grad = null;
    }

    /// <summary>True when every gradient is finite (on the CPU one SIMD pass per parameter or flat buffer; elsewhere one reduction
    /// per tensor and a single read of the combined answer).</summary>
    public bool GradientsFinite()
    {
        using var _ = torch.no_grad();
        // Every temporary (the element-wise masks included) is freed at once: a leaked mask costs the parameter's size per step.
        using var scope = torch.NewDisposeScope();
        var flags = new List<Tensor>();
        bool Check(Tensor g)
        {
            if (Fused && IsHostFloats(g)) return AllFinite(g);
            flags.Add(torch.isfinite(g).all());
            return true;
        }
        var gathered = Gather();
        for (int i = 0; i < _state.Count; i++)
        {
            if (gathered is not null && _inFlat[i]) continue;
            var g = _state[i].p.grad;
            if (g is not null && !Check(g)) return false;
        }
        if (gathered is not null)
            foreach (var g in gathered) if (!Check(g)) return false;
        return flags.Count == 0 || (flags.Count == 1 ? flags[0] : torch.stack(flags).all()).item<bool>();
    }

    public void Step()
    {
        Steps++;
        double bc1 = 1 - Math.Pow(_beta1, Steps), bc2 = 1 - Math.Pow(_beta2, Steps);
        double stepSize = LearningRate / bc1, bc2Sqrt = Math.Sqrt(bc2);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var gathered = Gather();
        for (int i = 0; i < _state.Count; i++)
        {
            if (gathered is not null && _inFlat[i]) continue;
            var (p, decay, m, v) = _state[i];
            if (p.grad is { } g) Update(p, g, m, v, decay, stepSize, bc2Sqrt);
        }
        if (gathered is not null)
            for (int k = 0; k < _flat!.Count; k++)
                Update(_flat[k].P, gathered[k], _flat[k].M, _flat[k].V, _flat[k].Decay, stepSize, bc2Sqrt);
    }

    private void Update(Tensor p, Tensor g, Tensor m, Tensor v, double decay, double stepSize, double bc2Sqrt)
    {
        using var scope = torch.NewDisposeScope();
        if (Fused && CanFuse(p, g, m, v)) { FusedUpdate(p, g, m, v, decay, stepSize, bc2Sqrt); return; }
        // Each number held for the whole update (see Scalars: TorchSharp does not keep converted numbers alive during a call).
        using var keep = Scalars.Hold(1 - LearningRate * decay);
        using Scalar b1 = Scalars.Hold(_beta1), b1c = Scalars.Hold(1 - _beta1), b2 = Scalars.Hold(_beta2), b2c = Scalars.Hold(1 - _beta2);
        using Scalar root = Scalars.Hold(bc2Sqrt), eps = Scalars.Hold(_eps), step = Scalars.Hold(-stepSize);
        if (decay > 0) p.mul_(keep);
        m.mul_(b1).add_(g, alpha: b1c);
        v.mul_(b2).addcmul_(g, g, value: b2c);
        var denom = v.sqrt().div_(root).add_(eps, Scalars.One);
        p.addcdiv_(m, denom, value: step);
    }

    /// <summary>The current gradients of each flat group as one tensor (one concatenation; the groups are built at the first call
    /// that finds gradients),
    /// or null: no flat groups, or a member without a gradient now (the step then updates each parameter on its own, which skips
    /// that member as PyTorch does). The tensors belong to the caller's dispose scope.</summary>
    private Tensor[]? Gather()
    {
        if (_flat is null)
        {
            if (_state.All(e => e.p.grad is null)) return null;              // nothing to lay out yet: decide at the first gradient
            _flat = BuildFlatGroups();
        }
        if (_flat.Count == 0 || _flat.Any(f => f.Members.Any(i => _state[i].p.grad is null))) return null;
        return _flat.Select(f =>
        {
            using var scope = torch.NewDisposeScope();
            return torch.cat(f.Members.Select(i => _state[i].p.grad!.reshape(-1)).ToList(), 0).MoveToOuterDisposeScope();
        }).ToArray();
    }

    /// <summary>Per group (when <see cref="SingleBuffer"/> says so): the parameters that have a gradient now, if they share a device
    /// and floating dtype, become views of one weight buffer (<c>set_</c>: the modules keep their parameter objects) and their
    /// moments views of two moment buffers, values kept. Parameters without a gradient (unused by the forward) stay on their own.</summary>
    private List<FlatGroup> BuildFlatGroups()
    {
        var groups = new List<FlatGroup>();
        _inFlat = new bool[_state.Count];
        using var _ = torch.no_grad();
        foreach (var (first, count) in _groups)
        {
            var members = Enumerable.Range(first, count).Where(i => _state[i].p.grad is not null).ToArray();
            if (members.Length == 0) continue;
            var p0 = _state[members[0]].p;
            if (!p0.is_floating_point() || members.Any(i => _state[i].p.dtype != p0.dtype || _state[i].p.device_type != p0.device_type || _state[i].p.device_index != p0.device_index)) continue;
            bool hostFused = Fused && members.All(i => IsHostFloats(_state[i].p));
            if (!(SingleBuffer ?? !hostFused)) continue;
            long total = members.Sum(i => _state[i].p.numel());
            // Kept beyond the caller's dispose scope (the first step's): they live as long as the optimiser.
            Tensor Buffer() => torch.empty(total, p0.dtype, p0.device).DetachFromDisposeScope();
            var flat = new FlatGroup(members, _state[first].decay, Buffer(), Buffer(), Buffer());
            long offset = 0;
            foreach (int i in members)
            {
                using var scope = torch.NewDisposeScope();
                var (p, decay, m, v) = _state[i];
                long n = p.numel();
                Tensor View(Tensor buffer, Tensor values)
                {
                    var view = buffer.narrow(0, offset, n).view(p.shape);
                    view.copy_(values);
                    return view;
                }
                p.set_(View(flat.P, p));
                var mv = View(flat.M, m).DetachFromDisposeScope();
                var vv = View(flat.V, v).DetachFromDisposeScope();
                m.Dispose(); v.Dispose();
                _state[i] = (p, decay, mv, vv);
                _inFlat[i] = true;
                offset += n;
            }
            groups.Add(flat);
        }
        return groups;
    }

    private static bool CanFuse(Tensor p, Tensor g, Tensor m, Tensor v) => IsHostFloats(p) && IsHostFloats(g) && IsHostFloats(m) && IsHostFloats(v);

    /// <summary>p ← p·(1 - lr·decay) - stepSize · m' / (sqrt(v') / bc2Sqrt + eps), with m' = β1·m + (1-β1)·g and
    /// v' = β2·v + (1-β2)·g², in one pass (chunks in parallel over libtorch's thread count).</summary>
    private unsafe void FusedUpdate(Tensor p, Tensor g, Tensor m, Tensor v, double decay, double stepSize, double bc2Sqrt)
    {
        int n = (int)p.numel();
        float keep = decay > 0 ? (float)(1 - LearningRate * decay) : 1f;
        float b1 = (float)_beta1, c1 = (float)(1 - _beta1), b2 = (float)_beta2, c2 = (float)(1 - _beta2);
        float step = (float)stepSize, inv = (float)(1 / bc2Sqrt), eps = (float)_eps;
        float* pp = Floats(p), gp = Floats(g), mp = Floats(m), vp = Floats(v);
        const int Chunk = 1 << 16;
        int chunks = (n + Chunk - 1) / Chunk;
        Parallel.For(0, chunks, Parallelism(),
            [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)] (c) =>
        {
            int i = c * Chunk, end = Math.Min(n, i + Chunk);
            if (Vector256.IsHardwareAccelerated)
            {
                Vector256<float> vk = Vector256.Create(keep), vb1 = Vector256.Create(b1), vc1 = Vector256.Create(c1), vb2 = Vector256.Create(b2),
                    vc2 = Vector256.Create(c2), vstep = Vector256.Create(step), vinv = Vector256.Create(inv), veps = Vector256.Create(eps);
                for (; i + 8 <= end; i += 8)
                {
                    var gi = Vector256.Load(gp + i);
                    var mi = Vector256.Load(mp + i) * vb1 + gi * vc1;
                    var vi = Vector256.Load(vp + i) * vb2 + gi * gi * vc2;
                    mi.Store(mp + i); vi.Store(vp + i);
                    var pi = Vector256.Load(pp + i) * vk - vstep * mi / (Vector256.Sqrt(vi) * vinv + veps);
                    pi.Store(pp + i);
                }
            }
            for (; i < end; i++)
            {
                float gi = gp[i];
                float mi = mp[i] * b1 + gi * c1, vi = vp[i] * b2 + gi * gi * c2;
                mp[i] = mi; vp[i] = vi;
                pp[i] = pp[i] * keep - step * mi / (MathF.Sqrt(vi) * inv + eps);
            }
        });
        GC.KeepAlive(p); GC.KeepAlive(g); GC.KeepAlive(m); GC.KeepAlive(v);
    }

    /// <summary>One read-only SIMD pass, in chunks over libtorch's thread count with four independent sums each: x·0 is 0 for every
    /// finite x and NaN for an infinity or NaN, so the sum of x·0 is 0 exactly when every element is finite.</summary>
    private static unsafe bool AllFinite(Tensor g)
    {
        int n = (int)g.numel();
        float* x = Floats(g);
        const int Chunk = 1 << 18;
        int chunks = (n + Chunk - 1) / Chunk, bad = 0;
        Parallel.For(0, chunks, Parallelism(),
            [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)] (c, state) =>
        {
            int i = c * Chunk, end = Math.Min(n, i + Chunk);
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, zero = default;
            if (Vector256.IsHardwareAccelerated)
                for (; i + 32 <= end; i += 32)
                {
                    a0 += Vector256.Load(x + i) * zero; a1 += Vector256.Load(x + i + 8) * zero;
                    a2 += Vector256.Load(x + i + 16) * zero; a3 += Vector256.Load(x + i + 24) * zero;
                }
            float sum = Vector256.Sum(a0 + a1 + a2 + a3);
            for (; i < end; i++) sum += x[i] * 0f;
            if (sum != 0f) { Interlocked.Exchange(ref bad, 1); state.Stop(); }
        });
        GC.KeepAlive(g);
        return bad == 0;
    }

    /// <summary>Moments as named tensors (m.i, v.i in parameter order).</summary>
    public Dictionary<string, Tensor> StateTensors()
    {
        var d = new Dictionary<string, Tensor>();
        for (int i = 0; i < _state.Count; i++) { d[$"m.{i}"] = _state[i].m; d[$"v.{i}"] = _state[i].v; }
        return d;
    }

    public void LoadState(Func<string, Tensor> read, long steps)
    {
        using var _ = torch.no_grad();
        for (int i = 0; i < _state.Count; i++)
        {
            foreach (var (name, t) in new[] { ($"m.{i}", _state[i].m), ($"v.{i}", _state[i].v) })
            {
                using var src = read(name);
                if (!src.shape.SequenceEqual(t.shape))
                    throw new InvalidDataException($"optimizer state '{name}' has shape [{string.Join(", ", src.shape)}], expected [{string.Join(", ", t.shape)}].");
                t.copy_(src);
            }
        }
        Steps = steps;
    }

    public void Dispose()
    {
        foreach (var (_, _, m, v) in _state) { m.Dispose(); v.Dispose(); }
        _state.Clear();
        // The weight buffers stay alive through the parameters that view them; only these handles go.
        foreach (var f in _flat ?? new()) { f.P.Dispose(); f.M.Dispose(); f.V.Dispose(); }
        _flat = null;
    }
}
