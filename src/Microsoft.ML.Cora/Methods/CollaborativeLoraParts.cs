using TorchSharp;

namespace Microsoft.ML.Cora.Methods;

/// <summary>CoRA's trainable parts: the collaborative query generator and the collaborative weights' P maps.</summary>
internal sealed class CollaborativeLoraParts : TrainableParts
{
#pragma warning disable IDE1006 // snake_case matches the saved state's keys
    public QueryGenerator query_generator;
    public CollaborativeWeights collaborative_weights;
#pragma warning restore IDE1006

    public CollaborativeLoraParts(QueryGenerator generator, CollaborativeWeights weights)
    {
        query_generator = generator; collaborative_weights = weights;
        RegisterComponents();
    }

    public override void Apply(Runtime.ComputePlan plan)
    {
        query_generator.Apply(plan);
        collaborative_weights.FastDropout = plan.FastDropout;
    }
}
