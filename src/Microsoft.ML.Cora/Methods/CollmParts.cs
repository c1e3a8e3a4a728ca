using TorchSharp;

namespace Microsoft.ML.Cora.Methods;

/// <summary>CoLLM's trainable parts: the MLP from CF embeddings to token embeddings, and LoRA on the frozen LLM.</summary>
internal sealed class CollmParts : TrainableParts
{
#pragma warning disable IDE1006 // snake_case matches the saved state's keys
    public LoraWeights lora;
    public CfTokenMapper cf_token_mapper;
#pragma warning restore IDE1006

    public CollmParts(LoraWeights lora, CfTokenMapper mapper)
    {
        this.lora = lora; cf_token_mapper = mapper;
        RegisterComponents();
    }

    public override void Apply(Runtime.ComputePlan plan) => lora.FastDropout = plan.FastDropout;
}
