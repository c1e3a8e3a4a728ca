using TorchSharp;

namespace Microsoft.ML.Cora.Methods;

/// <summary>LLM-LoRA's (TALLRec's) trainable parts: one plain LoRA on the frozen LLM's projections.</summary>
internal sealed class LoraParts : TrainableParts
{
#pragma warning disable IDE1006 // snake_case matches the saved state's keys
    public LoraWeights lora;
#pragma warning restore IDE1006

    public LoraParts(LoraWeights lora)
    {
        this.lora = lora;
        RegisterComponents();
    }

    public override void Apply(Runtime.ComputePlan plan) => lora.FastDropout = plan.FastDropout;
}
