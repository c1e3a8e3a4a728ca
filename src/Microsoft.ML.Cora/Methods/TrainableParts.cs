using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Methods;

/// <summary>
/// What a method trains (the LLM and the CF model are frozen and not in here): each method builds its own subclass
/// (<see cref="CollaborativeLoraParts"/>, <see cref="CollmParts"/>, <see cref="LoraParts"/>; MF trains nothing here). The module is
/// named "trainable" and its fields are named after the saved state's keys (<c>query_generator.*</c>, <c>lora.*</c>, ...).
/// </summary>
internal abstract class TrainableParts : nn.Module
{
    protected TrainableParts() : base("trainable") { }

    /// <summary>Applies a compute plan's switches to the parts that read them (dropout masks, shared input products).</summary>
    public virtual void Apply(Runtime.ComputePlan plan) { }

    /// <summary>MF alone: no trainable parts.</summary>
    internal sealed class None : TrainableParts
    {
        public None() => RegisterComponents();
    }
}
