using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.Cora.Llm.Kernels;

namespace Microsoft.ML.Cora.Llm;

/// <summary>A frozen linear projection; the hook (if any) is passed per call, so one model serves many threads.</summary>
internal sealed class HookedLinear : nn.Module
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
