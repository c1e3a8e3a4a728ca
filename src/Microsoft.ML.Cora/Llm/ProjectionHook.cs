using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.Cora.Llm.Kernels;

namespace Microsoft.ML.Cora.Llm;

/// <summary>The projections of a decoder layer that can receive a low-rank term.</summary>
public enum ProjectionKind { Q, K, V, O, Gate, Up, Down }

/// <summary>Identifies one projection of the frozen LLM: its layer, kind and shape.</summary>
public readonly record struct ProjectionSite(int Layer, ProjectionKind Kind, int InFeatures, int OutFeatures)
{
    /// <summary>Hugging Face style name, e.g. <c>layers.3.q_proj</c>.</summary>
    public string Name => $"layers.{Layer}.{KindName(Kind)}";

    public static string KindName(ProjectionKind k) => k switch
    {
        ProjectionKind.Q => "q_proj", ProjectionKind.K => "k_proj", ProjectionKind.V => "v_proj", ProjectionKind.O => "o_proj",
        ProjectionKind.Gate => "gate_proj", ProjectionKind.Up => "up_proj", _ => "down_proj",
    };

    public static bool TryParseKind(string? s, out ProjectionKind kind)
    {
        try { kind = ParseKind(s ?? ""); return true; }
        catch (ArgumentException) { kind = default; return false; }
    }

    public static ProjectionKind ParseKind(string s) => s.Trim().ToLowerInvariant() switch
    {
        "q" or "q_proj" => ProjectionKind.Q, "k" or "k_proj" => ProjectionKind.K, "v" or "v_proj" => ProjectionKind.V,
        "o" or "o_proj" => ProjectionKind.O, "gate" or "gate_proj" => ProjectionKind.Gate, "up" or "up_proj" => ProjectionKind.Up,
        "down" or "down_proj" => ProjectionKind.Down,
        _ => throw new ArgumentException($"Unknown projection '{s}'. Use q, k, v, o, gate, up or down."),
    };
}

/// <summary>
/// Adds a term to the output of a frozen projection: <c>y = W x + b + Delta(site, x)</c>.
/// Implementations carry their own (possibly per-sample) state, e.g. CoRA's collaborative weights
/// <c>scale * P(dropout(x) @ A_b)</c> or a plain LoRA. Returning null leaves the projection unchanged.
/// </summary>
public interface IProjectionHook
{
    /// <param name="site">Which projection is being computed.</param>
    /// <param name="x">Its input, [batch, tokens, in].</param>
    /// <returns>[batch, tokens, out] or null.</returns>
    Tensor? Delta(ProjectionSite site, Tensor x);

    /// <summary>The same hook for a subset of the batch's rows (per-sample hooks select their state; shared ones return themselves).</summary>
    /// <param name="rows">int64 row indices into the batch</param>
    IProjectionHook Rows(Tensor rows) => this;
}

/// <summary>
/// The per-sample low-rank term <c>scale * P(dropout(x) @ A_b)</c> with <c>A_b</c>: [batch, in, r] and a
/// module-owned P: r -> out. Costs O(batch * tokens * (in + out) * r); no dense per-sample matrix is built.
/// </summary>
public static class LowRank
{
    /// <param name="x">[B, T, in]</param>
    /// <param name="a">[B, in, r]</param>
    /// <param name="p">Linear r -> out (no bias)</param>
    /// <param name="fastDropout">masks from <see cref="FastDropout"/> (same distribution) instead of libtorch's sampler</param>
    public static Tensor PerSample(Tensor x, Tensor a, nn.Module<Tensor, Tensor> p, double scale, double dropout, bool training, bool fastDropout = true)
    {
        using var scope = torch.NewDisposeScope();
        return Output(InputProduct(x, a, dropout, training, fastDropout), p, scale, x.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>dropout(x) @ A_b, [B, T, r], computed in A's dtype (fp32 by default) even when the frozen LLM runs in bf16/fp16.</summary>
    public static Tensor InputProduct(Tensor x, Tensor a, double dropout, bool training, bool fastDropout = true)
    {
        using var scope = torch.NewDisposeScope();
        var h = x.dtype == a.dtype ? x : x.to(a.dtype);
        if (dropout > 0 && training) h = FastDropout.Apply(h, dropout, training: true, fastDropout);
        return torch.bmm(h, a).MoveToOuterDisposeScope();                    // [B, T, r]
    }

    /// <summary>scale * P(xa), [B, T, out], cast back to the activations' dtype.</summary>
    public static Tensor Output(Tensor xa, nn.Module<Tensor, Tensor> p, double scale, ScalarType outDtype)
    {
        using var scope = torch.NewDisposeScope();
        var y = p.call(xa).mul(Runtime.Scalars.Of(scale));                                       // [B, T, out]
        return (y.dtype == outDtype ? y : y.to(outDtype)).MoveToOuterDisposeScope();
    }
}

/// <summary>A frozen linear projection; the hook (if any) is passed per call, so one model serves many threads.</summary>
public sealed class HookedLinear : nn.Module
{
#pragma warning disable IDE1006 // snake_case matches checkpoint keys
    public TorchSharp.Modules.Parameter weight;
    public TorchSharp.Modules.Parameter? bias;
#pragma warning restore IDE1006
    public ProjectionSite Site { get; }

    public HookedLinear(ProjectionSite site, bool hasBias) : base(ProjectionSite.KindName(site.Kind))
    {
        Site = site;
        weight = nn.Parameter(torch.empty(site.OutFeatures, site.InFeatures), requires_grad: false);
        if (hasBias) bias = nn.Parameter(torch.zeros(site.OutFeatures), requires_grad: false);
        RegisterComponents();
    }

    /// <param name="x">[B, T, in]</param>
    /// <returns>[B, T, out]</returns>
    public Tensor Forward(Tensor x, IProjectionHook? hook)
    {
        var y = nn.functional.linear(x, weight, bias);
        if (hook is null) return y;
        using var delta = hook.Delta(Site, x);
        if (delta is null) return y;
        var sum = y.add(delta, Runtime.Scalars.One);
        y.Dispose();
        return sum;
    }
}
