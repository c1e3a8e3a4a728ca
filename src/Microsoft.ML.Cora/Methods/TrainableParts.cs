using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Methods;

/// <summary>The trainable parts of a method (the LLM and the CF model are frozen and not in here).</summary>
public sealed class TrainableParts : nn.Module
{
#pragma warning disable IDE1006
    public QueryGenerator? query_generator;
    public CollaborativeWeights? collaborative_weights;
    public LoraWeights? lora;
    public CfTokenMapper? cf_token_mapper;
#pragma warning restore IDE1006
    public TrainableParts() : base("trainable") { }
    public void Register() => RegisterComponents();
}
