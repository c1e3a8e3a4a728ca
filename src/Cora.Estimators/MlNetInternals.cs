using System.Reflection;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Cora.Estimators;

/// <summary>
/// The only place where Cora touches ML.NET internals (ML.NET 5.0.1 keeps model save/load plumbing internal:
/// ModelSaveContext members, ModelLoadContext, VersionInfo and MLContext cancellation). One more internal is named outside C#:
/// the build writes <c>[assembly: Microsoft.ML.LoadableClass(typeof(CoraTransformer), ...)]</c> into this assembly
/// (build/MlNetLoadableClass.targets; <c>IgnoresAccessChecksTo.cs</c> lets the runtime read it), which is how ML.NET's
/// <c>Model.Load</c> finds Cora's loader with no registration call. Every member is looked up once, by name, and a missing one throws
/// <see cref="NotSupportedException"/> naming it, so a future ML.NET that changes them fails loudly (the tests
/// <c>MlNetInternalsTests</c> exercise each one).
/// </summary>
internal static class MlNetInternals
{
    private const BindingFlags Any = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static;
    private static readonly Assembly Core = typeof(ModelSaveContext).Assembly;

    private static Type CoreType(string name) => Core.GetType(name) ?? throw Changed($"type {name}");
    private static NotSupportedException Changed(string what) =>
        new($"Cora relies on ML.NET internal '{what}', which this ML.NET version ({typeof(MLContext).Assembly.GetName().Version}) does not have. Cora supports Microsoft.ML 5.0.x.");

    private static MethodInfo Method(Type t, string name, params Type[] args) => t.GetMethod(name, Any, null, args, null) ?? throw Changed($"{t.Name}.{name}");
    private static FieldInfo Field(Type t, string name) => t.GetField(name, Any) ?? throw Changed($"{t.Name}.{name}");

    internal static readonly Type VersionInfoType = CoreType("Microsoft.ML.VersionInfo");
    internal static readonly Type LoadContextType = CoreType("Microsoft.ML.ModelLoadContext");
    internal static readonly Type SignatureLoadModelType = CoreType("Microsoft.ML.SignatureLoadModel");
    internal static readonly Type LoadableClassAttributeType = CoreType("Microsoft.ML.LoadableClassAttribute");
    internal static readonly Type CancelableType = CoreType("Microsoft.ML.Runtime.ICancelable");

    private static object NewVersionInfo(string modelSignature, uint written, uint readable, uint readBack, string loaderSignature)
    {
        var ctor = VersionInfoType.GetConstructor(Any, null, new[] { typeof(string), typeof(uint), typeof(uint), typeof(uint), typeof(string), typeof(string), typeof(string) }, null)
                   ?? throw Changed("VersionInfo(string, uint, uint, uint, string, string, string)");
        return ctor.Invoke(new object?[] { modelSignature, written, readable, readBack, typeof(MlNetInternals).Assembly.FullName, loaderSignature, null });
    }

    /// <summary>Writes a versioned binary payload into an ML.NET model save context.</summary>
    internal static void Save(ModelSaveContext ctx, string modelSignature, uint version, uint readableFrom, string loaderSignature, Action<BinaryWriter> write)
    {
        Method(typeof(ModelSaveContext), "CheckAtModel").Invoke(ctx, null);
        Method(typeof(ModelSaveContext), "SetVersionInfo", VersionInfoType).Invoke(ctx, new[] { NewVersionInfo(modelSignature, version, readableFrom, readableFrom, loaderSignature) });
        var writer = (BinaryWriter)Field(typeof(ModelSaveContext), "Writer").GetValue(ctx)!;
        write(writer);
    }

    /// <summary>Checks the version of a model load context and returns its reader and the version written.</summary>
    internal static (BinaryReader reader, uint versionWritten) Open(object loadContext, string modelSignature, uint version, uint readableFrom, string loaderSignature)
    {
        if (!LoadContextType.IsInstanceOfType(loadContext)) throw Changed("ModelLoadContext argument");
        Method(LoadContextType, "CheckAtModel").Invoke(loadContext, null);
        object header = Field(LoadContextType, "Header").GetValue(loadContext)!;
        uint written = (uint)Field(header.GetType(), "ModelVerWritten").GetValue(header)!;
        if (written > version)
            throw new InvalidDataException($"This Cora model was saved by a newer Cora (format {written >> 16}.{written & 0xffff}); this version reads up to {version >> 16}.{version & 0xffff}. Upgrade Cora.");
        var verInfo = NewVersionInfo(modelSignature, version, readableFrom, readableFrom, loaderSignature);
        try { Method(LoadContextType, "CheckVersionInfo", VersionInfoType).Invoke(loadContext, new[] { verInfo }); }
        catch (TargetInvocationException e) { throw new InvalidDataException($"Not a readable Cora model: {e.InnerException?.Message}", e.InnerException); }
        var reader = (BinaryReader)Field(LoadContextType, "Reader").GetValue(loadContext)!;
        return (reader, written);
    }

    /// <summary>SchemaShape of a schema (SchemaShape.Create and the SchemaShape.Column constructor are internal).</summary>
    internal static SchemaShape ShapeOf(Microsoft.ML.DataViewSchema schema) =>
        (SchemaShape)Method(typeof(SchemaShape), "Create", typeof(Microsoft.ML.DataViewSchema)).Invoke(null, new object[] { schema })!;

    /// <summary>The environment behind an ML.NET catalog (the explicit IInternalCatalog.Environment property).</summary>
    internal static IHostEnvironment EnvironmentOf(object catalog)
    {
        var prop = catalog.GetType().GetProperties(Any).FirstOrDefault(p => p.Name.EndsWith("Environment") && p.PropertyType == typeof(IHostEnvironment))
                   ?? throw Changed($"{catalog.GetType().Name}.IInternalCatalog.Environment");
        return (IHostEnvironment)prop.GetValue(catalog)!;
    }

    /// <summary>True when <c>MLContext.CancelExecution()</c> was called on this context (its environment is ICancelable).</summary>
    internal static bool IsCanceled(MLContext ml)
    {
        var env = Field(typeof(MLContext), "_env").GetValue(ml);
        var prop = CancelableType.GetProperty("IsCanceled") ?? throw Changed("ICancelable.IsCanceled");
        return env is not null && CancelableType.IsInstanceOfType(env) && (bool)prop.GetValue(env)!;
    }

    /// <summary>Calls the internal <c>MLContext.CancelExecution()</c> (for tests and hosts that only hold the context).</summary>
    internal static void CancelExecution(MLContext ml) => Method(typeof(MLContext), "CancelExecution").Invoke(ml, null);
}
