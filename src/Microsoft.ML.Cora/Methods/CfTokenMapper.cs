using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Methods;

/// <summary>CoLLM's collaborative-information encoder: an MLP from a CF embedding to one LLM token embedding.</summary>
internal sealed class CfTokenMapper : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006
    public Linear fc1, fc2;
#pragma warning restore IDE1006
    public CfTokenMapper(int cfDim, int dModel) : base("cf_token_mapper")
    {
        fc1 = nn.Linear(cfDim, dModel * 2);
        fc2 = nn.Linear(dModel * 2, dModel);
        RegisterComponents();
    }
    /// <param name="e">[B, cf]</param><returns>[B, d_model]</returns>
    public override Tensor forward(Tensor e)
    {
        using var h = nn.functional.relu(fc1.call(e));
        return fc2.call(h);
    }
}
