using Microsoft.ML.Cora.Llm;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Methods;

/// <summary>
/// A plain LoRA on the frozen LLM (TALLRec): per projection A: in -> r (Kaiming-uniform) and B: r -> out (zero),
/// <c>y = W x + (alpha / r) B(A(dropout(x)))</c>; the same for every sample.
/// </summary>
internal sealed class LoraWeights : nn.Module, IProjectionHook
{
#pragma warning disable IDE1006
    public LinearMap lora_a, lora_b;
#pragma warning restore IDE1006
    private readonly double _scale, _dropout;
    /// <summary>Dropout masks from <see cref="Llm.Kernels.FastDropout"/> (see <see cref="Runtime.ComputePlan.FastDropout"/>).</summary>
    public bool FastDropout { get; set; } = true;

    public LoraWeights(IReadOnlyList<ProjectionSite> sites, int rank, double alpha, double dropout, long seed) : base("lora")
    {
        _scale = alpha / rank; _dropout = dropout;
        torch.manual_seed(seed);
        lora_a = new LinearMap("lora_a"); lora_b = new LinearMap("lora_b");
        foreach (var s in sites)
        {
            string k = s.Name.Replace('.', '_');
            lora_a.Add(k, nn.Linear(s.InFeatures, rank, hasBias: false));
            var b = nn.Linear(rank, s.OutFeatures, hasBias: false);
            using (torch.no_grad()) b.weight!.zero_();
            lora_b.Add(k, b);
        }
        RegisterComponents();
    }

    public Tensor? Delta(ProjectionSite site, Tensor x)
    {
        string k = site.Name.Replace('.', '_');
        if (!lora_a.TryGetValue(k, out var a)) return null;
        using var scope = torch.NewDisposeScope();
        var w = a.weight!.dtype;                                       // LoRA computes in its own dtype (fp32), cast back after
        var h = x.dtype == w ? x : x.to(w);
        if (_dropout > 0 && training) h = Llm.Kernels.FastDropout.Apply(h, _dropout, training: true, FastDropout);
        var y = lora_b[k].call(a.call(h)).mul(Runtime.Scalars.Of(_scale));
        return (y.dtype == x.dtype ? y : y.to(x.dtype)).MoveToOuterDisposeScope();
    }
}
